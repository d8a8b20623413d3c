package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The spent-balance reaper stops a user's ready sessions when the user's balance minus the usage
// those sessions have accrued so far reaches zero, billing them up to that moment (the session's
// end event carries the usage, so the balance then shows it). A scheduled job (entry point
// SpentBalanceReaper), on the expiry reaper's period.

// ReapSpentBalances makes one pass over the ready sessions and returns the ids of those it
// ended.
func ReapSpentBalances(ctx context.Context, a *app.App) ([]string, error) {
	ended, _, err := spentPass(ctx, a, passCap)
	return ended, err
}

// spentPass ends the sessions of users whose balance is spent, a user's sessions all at once,
// and stops before a user whose sessions would take it past limit (more: the next call goes on).
// Two passes at once end each session once: the end is decided on the session's stream.
func spentPass(ctx context.Context, a *app.App, limit int) (ended []string, more bool, err error) {
	now := a.Clock.Now()
	running := map[string][]events.Session{} // by user
	var errs []error
	err = eachActiveSession(ctx, a, func(d projections.SessionDoc) {
		if d.Status != events.StatusReady {
			return
		}
		s, ok, err := loadSession(ctx, a, d.SessionID)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if ok && s.Status == events.StatusReady {
			running[s.UserID] = append(running[s.UserID], s)
		}
	})
	if err != nil {
		return nil, false, err
	}
	for user, sessions := range running {
		b, err := projections.Get[projections.Balance](ctx, a.Docs, projections.BalanceCollection, user)
		if err != nil && !errors.Is(err, projections.ErrNotFound) {
			errs = append(errs, fmt.Errorf("balance of %s: %w", user, err))
			continue
		}
		var accrued int64
		for _, s := range sessions {
			accrued += events.ChargeCents(s.DurationSeconds(now), s.CentsPerMinute)
		}
		if !events.Spent(b.BalanceCents, accrued) {
			continue
		}
		if len(ended) > 0 && len(ended)+len(sessions) > limit {
			more = true
			break
		}
		for _, s := range sessions {
			if _, err := endSession(ctx, a, s.SessionID, events.EndBalanceExhausted, now); err != nil {
				errs = append(errs, err)
				continue
			}
			ended = append(ended, s.SessionID)
		}
	}
	return ended, more, errors.Join(errs...)
}

// reapSpentBalances is one pass as a scheduled job: it answers the sessions it ended.
func reapSpentBalances(ctx context.Context, a *app.App) (any, error) {
	ended, more, err := spentPass(ctx, a, passCap)
	if ended == nil {
		ended = []string{}
	}
	return map[string]any{"ended": ended, "more": more}, err
}
