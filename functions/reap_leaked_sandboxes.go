package functions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
)

// The leaked-sandbox reaper stops what the runtime still runs with no session to serve: a
// sandbox whose session ended (its stop failed, or came before a start that then finished) or
// never existed, and an oracle whose session ended or that has run longer than any verification
// may (its verifier's process stopped mid-run). A scheduled job (entry point
// LeakedSandboxReaper): Cloud Scheduler on GCP, a ticker locally. The runtime says what it runs
// (sandbox.Inventory); the session's stream says whether it still needs it.

// oracleMargin is how long past the verifier's timeout and the verifier's own grace an oracle
// may still be running a verification before it is taken as left behind.
const oracleMargin = 10 * time.Minute

// leakedCap bounds the sandboxes one pass stops: a Cloud Run deletion takes seconds.
const leakedCap = 20

// leakedEvery is the local period of the sweep.
func leakedEvery(config.Config) time.Duration { return time.Minute }

// reclaimed is one sandbox the sweep stopped, and why.
type reclaimed struct {
	SessionID string `json:"session_id"`
	Name      string `json:"name"`
	Oracle    bool   `json:"oracle,omitempty"`
	Why       string `json:"why"`
}

// ReapLeakedSandboxes makes one pass: it stops at most limit leaked sandboxes and says whether
// more were found. Two passes at once may both stop one sandbox: stopping is idempotent.
func ReapLeakedSandboxes(ctx context.Context, a *app.App, limit int) ([]reclaimed, bool, error) {
	inv, ok := a.Sandboxes.(sandbox.Inventory)
	if !ok {
		return nil, false, nil // no runtime, or one that cannot list: nothing to sweep
	}
	listed, err := inv.List(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("list sandboxes: %w", err)
	}
	now := a.Clock.Now()
	oracleLimit := a.Config.VerifyTimeout + verifyGrace + oracleMargin
	sessions := map[string]events.Session{} // loaded once per pass
	found := map[string]bool{}
	var out []reclaimed
	var errs []error
	for _, l := range listed {
		if ctx.Err() != nil {
			return out, false, ctx.Err()
		}
		if _, seen := sessions[l.SessionID]; !seen {
			s, ok, err := loadSession(ctx, a, l.SessionID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sessions[l.SessionID], found[l.SessionID] = s, ok
		}
		s := sessions[l.SessionID]
		var why string
		switch {
		case !found[l.SessionID]:
			why = "no such session"
		case s.Done():
			why = "its session ended (" + s.Status + ")"
		case l.Oracle && !l.CreatedAt.IsZero() && now.Sub(l.CreatedAt) > oracleLimit:
			why = fmt.Sprintf("an oracle running for %s, longer than a verification may (%s)", now.Sub(l.CreatedAt).Round(time.Second), oracleLimit)
		default:
			continue
		}
		if len(out) >= limit {
			return out, true, errors.Join(errs...)
		}
		if err := inv.Reclaim(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("reclaim sandbox %s of session %s: %w", l.Name, l.SessionID, err))
			continue
		}
		a.Logger.InfoContext(ctx, "stopped a leaked sandbox", "session_id", l.SessionID, "sandbox", l.Name, "oracle", l.Oracle, "why", why)
		out = append(out, reclaimed{SessionID: l.SessionID, Name: l.Name, Oracle: l.Oracle, Why: why})
	}
	return out, false, errors.Join(errs...)
}

// reapLeakedSandboxes is one pass as a scheduled job: it answers the sandboxes it stopped.
func reapLeakedSandboxes(ctx context.Context, a *app.App) (any, error) {
	out, more, err := ReapLeakedSandboxes(ctx, a, leakedCap)
	if out == nil {
		out = []reclaimed{} // [] rather than null in the answer
	}
	return map[string]any{"stopped": out, "more": more}, err
}
