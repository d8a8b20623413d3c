package functions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
)

// The reaper ends sessions at their expires_at (terminated, billed up to that moment), fails
// sessions whose sandbox never became ready, and records lost commands. A scheduled job (entry
// point Reaper): Cloud Scheduler calls it on GCP, a ticker every --reaper-interval locally.

// startGrace is how long past the start timeout the reaper waits before failing a session still
// creating: the provisioner normally records the failure itself.
const startGrace = 30 * time.Second

// passCap bounds what one pass of a scheduled job changes: the rest is left to the next call,
// so a call ends well within Cloud Scheduler's attempt deadline whatever the backlog.
const passCap = 100

// Reap makes one pass over the active sessions.
func Reap(ctx context.Context, a *app.App) error {
	_, err := reapPass(ctx, a, passCap)
	return err
}

// reaped is what one pass of the reaper did; More says it stopped at its cap with work left.
type reaped struct {
	Expired     int  `json:"expired"`
	StartFailed int  `json:"start_failed"`
	Interrupted int  `json:"interrupted"`
	More        bool `json:"more"`
}

// reapPass ends or fails at most limit sessions and interrupts at most limit lost commands.
// Two passes at once decide on the same stream versions: each change is appended once, and
// the other pass finds it done (an ended session bills once, whoever ends it).
func reapPass(ctx context.Context, a *app.App, limit int) (reaped, error) {
	now := a.Clock.Now()
	var res reaped
	sessions, err := listAll[projections.SessionDoc](ctx, a, projections.SessionCollection, projections.Filter{Field: "active", Value: true})
	if err != nil {
		return res, fmt.Errorf("active sessions: %w", err)
	}
	var errs []error
	for _, d := range sessions {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		expired := !now.Before(d.ExpiresAt)
		stuck := d.Status == events.StatusCreating && now.Sub(d.RequestedAt) > a.Config.SessionStartTimeout+startGrace
		if !expired && !stuck {
			continue
		}
		if res.Expired+res.StartFailed >= limit {
			res.More = true
			break
		}
		if expired {
			// A session is billed to its expiry, however late the reaper comes.
			_, err = endSession(ctx, a, d.SessionID, events.EndExpired, d.ExpiresAt)
			res.Expired++
		} else {
			_, err = updateSession(ctx, a, d.SessionID, func(s events.Session) ([]events.Envelope, error) {
				return s.Fail(ids.New(), now, codeStartTimeout, fmt.Sprintf("the sandbox was not ready within %s", a.Config.SessionStartTimeout))
			})
			res.StartFailed++
		}
		errs = append(errs, err)
	}
	n, more, err := reapLostCommands(ctx, a, now, limit)
	res.Interrupted, res.More = n, res.More || more
	return res, errors.Join(append(errs, err)...)
}

// lostMargin is how long past a command's timeout and the executor's own grace (execGrace) the
// reaper waits for its result before calling the command lost.
const lostMargin = 30 * time.Second

// reapLostCommands records as interrupted the commands claimed longer ago than their timeout
// allows and still without a result: their executor stopped. Locally a restart finds them too;
// on GCP an executor's instance can vanish mid-command, and the redelivery that follows finds
// the claim and must leave it to its owner, which may still be running it.
// It interrupts at most max commands and says whether more were due.
func reapLostCommands(ctx context.Context, a *app.App, now time.Time, max int) (int, bool, error) {
	docs, err := listAll[projections.InteractionDoc](ctx, a, projections.InteractionCollection,
		projections.Filter{Field: "status", Value: events.InteractionProcessing})
	if err != nil {
		return 0, false, fmt.Errorf("running commands: %w", err)
	}
	var errs []error
	n := 0
	for _, d := range docs {
		limit := time.Duration(d.CommandTimeout)*time.Second + execGrace + lostMargin
		if d.StartedAt == nil || now.Sub(*d.StartedAt) < limit {
			continue
		}
		if n >= max {
			return n, true, errors.Join(errs...)
		}
		// The read model may lag: the stream decides.
		evs, err := a.Events.Load(ctx, events.InteractionStream(d.InteractionID), 1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		it, ok, err := events.FoldInteraction(evs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok || it.Status != events.InteractionProcessing || now.Sub(it.StartedAt) < limit {
			continue // completed meanwhile, or claimed again since
		}
		n++
		errs = append(errs, interrupt(ctx, a, it, lostToSilence))
	}
	return n, false, errors.Join(errs...)
}

// listAll reads every document of coll matching where, a page at a time.
func listAll[T any](ctx context.Context, a *app.App, coll string, where ...projections.Filter) ([]T, error) {
	var all []T
	q := projections.Query{Where: where, Limit: 500}
	for {
		page, next, err := projections.List[T](ctx, a.Docs, coll, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		q.Cursor = next
	}
}

// eachActiveSession calls fn for every session creating or ready.
func eachActiveSession(ctx context.Context, a *app.App, fn func(projections.SessionDoc)) error {
	all, err := listAll[projections.SessionDoc](ctx, a, projections.SessionCollection, projections.Filter{Field: "active", Value: true})
	if err != nil {
		return fmt.Errorf("active sessions: %w", err)
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

// reaperEvery is the local period of the reapers.
func reaperEvery(cfg config.Config) time.Duration { return cfg.ReaperInterval }

// reap is one pass of the reaper as a scheduled job: it answers what it did.
func reap(ctx context.Context, a *app.App) (any, error) {
	return reapPass(ctx, a, passCap)
}
