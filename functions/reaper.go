package functions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/ids"
)

// The reaper ends sessions at their expires_at (terminated, billed up to that moment) and fails
// sessions whose sandbox never became ready. Locally it is a ticker; on GCP a Cloud Scheduler job
// calls Reap.
func init() {
	Loops = append(Loops, Task{Name: "reaper", Run: func(ctx context.Context, a *App) error {
		tick := time.NewTicker(a.Config.ReaperInterval)
		defer tick.Stop()
		for {
			if err := Reap(ctx, a); err != nil && ctx.Err() == nil {
				a.Logger.ErrorContext(ctx, "reaper pass failed", "error", err.Error())
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}})
}

// startGrace is how long past the start timeout the reaper waits before failing a session still
// creating: the provisioner normally records the failure itself.
const startGrace = 30 * time.Second

// Reap makes one pass over the active sessions.
func Reap(ctx context.Context, a *App) error {
	now := a.Clock.Now()
	var errs []error
	err := eachActiveSession(ctx, a, func(d projections.SessionDoc) {
		var err error
		switch {
		case !now.Before(d.ExpiresAt):
			// A session is billed to its expiry, however late the reaper comes.
			_, err = a.endSession(ctx, d.SessionID, events.EndExpired, d.ExpiresAt)
		case d.Status == events.StatusCreating && now.Sub(d.RequestedAt) > a.Config.SessionStartTimeout+startGrace:
			_, err = a.decideSession(ctx, d.SessionID, func(s events.Session) ([]events.Envelope, error) {
				return s.Fail(ids.New(), now, codeStartTimeout, fmt.Sprintf("the sandbox was not ready within %s", a.Config.SessionStartTimeout))
			})
		}
		if err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(append(errs, err)...)
}

// eachActiveSession calls fn for every session creating or ready, a page at a time.
func eachActiveSession(ctx context.Context, a *App, fn func(projections.SessionDoc)) error {
	var all []projections.SessionDoc
	q := projections.Query{Where: []projections.Filter{{Field: "active", Value: true}}, Limit: 500}
	for {
		page, next, err := projections.List[projections.SessionDoc](ctx, a.Docs, projections.SessionCollection, q)
		if err != nil {
			return fmt.Errorf("active sessions: %w", err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	// Visit after listing: ending a session changes the set the cursor walks.
	for _, d := range all {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fn(d)
	}
	return nil
}
