package functions

// The session aggregate as the session endpoints, the provisioner, the executor, the reaper and
// the restart recovery use it: loading a session, changing it through the write path, ending it
// (which stops its sandbox).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// loadSession folds a session's stream; ok is false when there is no such session.
func loadSession(ctx context.Context, a *app.App, id string) (events.Session, bool, error) {
	evs, err := a.Events.Load(ctx, events.SessionStream(id), 1)
	if err != nil {
		return events.Session{}, false, fmt.Errorf("load session %s: %w", id, err)
	}
	return events.FoldSession(evs)
}

// callerSession loads the caller's session: another user's session, like an unknown one, is a
// 404, so that ids reveal nothing.
func callerSession(a *app.App, r *http.Request, id string) (events.Session, error) {
	s, ok, err := loadSession(r.Context(), a, id)
	if err != nil {
		return s, err
	}
	if !ok || s.UserID != app.Caller(r.Context()).UserID {
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

// updateSession changes an existing session through the write path and returns it as it now
// stands; an unknown session is an error.
func updateSession(ctx context.Context, a *app.App, id string, decide func(s events.Session) ([]events.Envelope, error)) (events.Session, error) {
	s, _, err := app.Update(ctx, a, events.SessionStream(id), events.SessionOf, func(s *events.Session) ([]events.Envelope, error) {
		if s.Version == 0 {
			return nil, fmt.Errorf("session %s: no such session", id)
		}
		return decide(*s)
	})
	return *s, err
}

// endSession ends a session for reason at `at` (once: an ended session is left as it is) and
// stops its sandbox. It returns the session as it now stands.
func endSession(ctx context.Context, a *app.App, id, reason string, at time.Time) (events.Session, error) {
	s, err := updateSession(ctx, a, id, func(s events.Session) ([]events.Envelope, error) {
		return s.End(ids.New(), at, reason)
	})
	if err != nil {
		return s, fmt.Errorf("end session %s: %w", id, err)
	}
	stopSandbox(ctx, a, s)
	return s, nil
}

// stopSandbox stops the sandbox of an ended session. Stopping twice is harmless, so it is done
// whenever a session is seen ended with a sandbox; a failure is logged and left to the
// leaked-sandbox reaper (reap_leaked_sandboxes.go), because the session's billing is already
// closed.
func stopSandbox(ctx context.Context, a *app.App, s events.Session) {
	a.ForgetSandboxClient(s.SessionID)
	if s.Sandbox.Name == "" || a.Sandboxes == nil || s.Active() {
		return
	}
	if err := a.Sandboxes.Stop(context.WithoutCancel(ctx), a.SandboxInfo(s.SessionID, s.Sandbox)); err != nil {
		a.Logger.WarnContext(ctx, "stopping a sandbox failed", "session_id", s.SessionID, "sandbox", s.Sandbox.Name, "error", err.Error())
	}
}

// infraResult is the result of an interaction the infrastructure could not carry out: exit code
// -1000, which the official client raises on, and the reason.
func infraResult(err error, took time.Duration) events.InteractionResult {
	return events.InteractionResult{
		ExitCode: sandbox.InfraExitCode, Stderr: "", ExecutionTimeSeconds: took.Seconds(),
		Message: "the sandbox could not be reached: " + err.Error(),
	}
}
