package functions

// What the session endpoints, the provisioner, the executor, the reaper and the restart recovery
// share: loading a session and deciding on it at its stream's version, ending it (which stops
// its sandbox), and the clients of running sandboxes.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// loadSession folds a session's stream; ok is false when there is no such session.
func (a *App) loadSession(ctx context.Context, id string) (events.Session, bool, error) {
	evs, err := a.Events.Load(ctx, events.SessionStream(id), 1)
	if err != nil {
		return events.Session{}, false, fmt.Errorf("load session %s: %w", id, err)
	}
	return events.FoldSession(evs)
}

// callerSession loads the caller's session: another user's session, like an unknown one, is a
// 404, so that ids reveal nothing.
func (a *App) callerSession(r *http.Request, id string) (events.Session, error) {
	s, ok, err := a.loadSession(r.Context(), id)
	if err != nil {
		return s, err
	}
	if !ok || s.UserID != Caller(r.Context()).UserID {
		return s, httpapi.NotFound("session")
	}
	return s, nil
}

// runnable maps a session that cannot take work now to a 409 that says why.
func runnable(s events.Session, now time.Time) error {
	switch err := s.CanRun(now); {
	case err == nil:
		return nil
	case errors.Is(err, events.ErrSessionNotReady):
		return httpapi.Conflict("session is still being created (status creating); poll GET /sessions/" + s.SessionID + " until its status is ready")
	case errors.Is(err, events.ErrSessionExpired):
		return httpapi.Conflict(fmt.Sprintf("session expired at %s; create a new session", s.ExpiresAt.Format(time.RFC3339)))
	default:
		return httpapi.Conflict(fmt.Sprintf("session has ended (status %s); create a new session", s.Status))
	}
}

// decideSession loads the session, asks decide for events and records them at the version it
// loaded, retrying when another writer got there first. It returns the state after the events.
func (a *App) decideSession(ctx context.Context, id string, decide func(s events.Session) ([]events.Envelope, error)) (events.Session, error) {
	for attempt := 0; ; attempt++ {
		s, ok, err := a.loadSession(ctx, id)
		if err != nil {
			return s, err
		}
		if !ok {
			return s, fmt.Errorf("session %s: no such session", id)
		}
		evs, err := decide(s)
		if err != nil || len(evs) == 0 {
			return s, err
		}
		stored, err := a.Record(ctx, events.SessionStream(id), s.Version, evs...)
		if errors.Is(err, events.ErrConcurrency) && attempt < 20 {
			continue
		}
		if err != nil {
			return s, err
		}
		for _, e := range stored {
			if err := s.Apply(e); err != nil {
				return s, err
			}
		}
		return s, nil
	}
}

// endSession ends a session for reason at `at` (once: an ended session is left as it is) and
// stops its sandbox. It returns the session as it now stands.
func (a *App) endSession(ctx context.Context, id, reason string, at time.Time) (events.Session, error) {
	s, err := a.decideSession(ctx, id, func(s events.Session) ([]events.Envelope, error) {
		return s.End(ids.New(), at, reason)
	})
	if err != nil {
		return s, fmt.Errorf("end session %s: %w", id, err)
	}
	a.stopSandbox(ctx, s)
	return s, nil
}

// stopSandbox stops the sandbox of an ended session. Stopping twice is harmless, so it is done
// whenever a session is seen ended with a sandbox; a failure is logged and left to the restart
// recovery, because the session's billing is already closed.
func (a *App) stopSandbox(ctx context.Context, s events.Session) {
	forgetClient(s.SessionID)
	if s.Sandbox.Name == "" || a.Sandboxes == nil || s.Active() {
		return
	}
	if err := a.Sandboxes.Stop(context.WithoutCancel(ctx), s.Sandbox); err != nil {
		a.Logger.WarnContext(ctx, "stopping a sandbox failed", "session_id", s.SessionID, "sandbox", s.Sandbox.Name, "error", err.Error())
	}
}

// clients keeps one agent client per running session, so commands reuse its connections.
var clients sync.Map // session id -> cachedClient

type cachedClient struct {
	url    string
	client sandbox.Client
}

// sandboxClient returns the client of a ready session's sandbox.
func (a *App) sandboxClient(s events.Session) (sandbox.Client, error) {
	if a.Sandboxes == nil {
		return nil, fmt.Errorf("%w: no sandbox runtime is configured", sandbox.ErrUnreachable)
	}
	if c, ok := clients.Load(s.SessionID); ok && c.(cachedClient).url == s.Sandbox.URL {
		return c.(cachedClient).client, nil
	}
	c := a.Sandboxes.Client(s.Sandbox)
	clients.Store(s.SessionID, cachedClient{url: s.Sandbox.URL, client: c})
	return c, nil
}

func forgetClient(sessionID string) { clients.Delete(sessionID) }

// infraResult is the result of an interaction the infrastructure could not carry out: exit code
// -1000, which the official client raises on, and the reason.
func infraResult(err error, took time.Duration) events.InteractionResult {
	return events.InteractionResult{
		ExitCode: sandbox.InfraExitCode, Stderr: "", ExecutionTimeSeconds: took.Seconds(),
		Message: "the sandbox could not be reached: " + err.Error(),
	}
}
