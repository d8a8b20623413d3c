package functions

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// provisioner starts the sandbox of a requested session and records it ready (billing starts)
// or failed. It decides from the session's state, so a duplicate delivery of the request does
// nothing once the session is ready, failed or ended; a session closed while its sandbox was
// starting gets that sandbox stopped at once.
type provisioner struct {
	// starting holds the sessions whose sandbox this process is starting, so that a second
	// delivery arriving meanwhile does not start another.
	starting sync.Map
}

// Error codes of a session that could not start.
const (
	codeStartFailed  = "sandbox_start_failed"
	codeStartTimeout = "sandbox_start_timeout"
	codeNoRuntime    = "no_sandbox_runtime"
)

func (p *provisioner) provision(ctx context.Context, a *app.App, e events.Envelope) error {
	var req events.SessionRequestedData
	if err := e.Decode(&req); err != nil {
		return err
	}
	id := req.SessionID
	if _, busy := p.starting.LoadOrStore(id, true); busy {
		return nil
	}
	defer p.starting.Delete(id)
	s, ok, err := loadSession(ctx, a, id)
	if err != nil {
		return err
	}
	if !ok || s.Status != events.StatusCreating {
		return nil
	}
	if a.Sandboxes == nil {
		_, err := updateSession(ctx, a, id, func(s events.Session) ([]events.Envelope, error) {
			return s.Fail(ids.New(), a.Clock.Now(), codeNoRuntime, "this server has no sandbox runtime configured")
		})
		return err
	}
	sec, err := a.NewSandboxSecret(s.SessionID)
	if err != nil {
		return err
	}
	spec := sandboxSpec(a, s, s.Env)
	spec.Secret = sec.Secret
	startCtx, cancel := context.WithTimeout(ctx, a.Config.SessionStartTimeout)
	defer cancel()
	info, err := a.Sandboxes.Start(startCtx, spec)
	if err != nil && ctx.Err() != nil {
		// The server is shutting down, not the sandbox failing: the request stays in the log
		// and is delivered again after the restart.
		return fmt.Errorf("start sandbox of %s: %w", id, err)
	}
	if err != nil {
		code := codeStartFailed
		if errors.Is(err, context.DeadlineExceeded) {
			code = codeStartTimeout
		}
		_, ferr := updateSession(ctx, a, id, func(s events.Session) ([]events.Envelope, error) {
			return s.Fail(ids.New(), a.Clock.Now(), code, fmt.Sprintf("the sandbox could not be started: %v", err))
		})
		return ferr
	}
	took := false
	after, err := updateSession(ctx, a, id, func(s events.Session) ([]events.Envelope, error) {
		evs, err := s.MarkReady(ids.New(), a.Clock.Now(), app.SandboxRecord(info, sec))
		took = len(evs) > 0
		return evs, err
	})
	if err != nil || !took {
		// The session ended (or failed) while the sandbox started, or recording failed: the
		// sandbox is nobody's, stop it rather than leak it.
		if serr := a.Sandboxes.Stop(context.WithoutCancel(ctx), info); serr != nil {
			a.Logger.WarnContext(ctx, "stopping an orphan sandbox failed", "session_id", id, "sandbox", info.Name, "error", serr.Error())
		}
		return err
	}
	if after.Done() {
		stopSandbox(ctx, a, after)
	}
	return nil
}

// sandboxSpec is what a session's sandbox is started from, in env (the session's environment);
// its oracle sandboxes are built from the same.
func sandboxSpec(a *app.App, s events.Session, sampleEnv events.Environment) sandbox.Spec {
	env := app.SandboxEnvironment(sampleEnv)
	if env.Archive != "" && !filepath.IsAbs(env.Archive) {
		env.Archive = filepath.Join(a.Config.DataDir, filepath.FromSlash(env.Archive))
	}
	return sandbox.Spec{SessionID: s.SessionID, UserID: s.UserID, Dataset: s.Dataset, SampleID: s.SampleID, Env: env, ExpiresAt: s.ExpiresAt,
		Blobs: a.Blobs}
}

// wantsSessionRequest: the provisioner's events.
func wantsSessionRequest(e events.Envelope) bool { return e.Type == events.SessionRequested }
