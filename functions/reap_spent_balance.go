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
	now := a.Clock.Now()
	running := map[string][]events.Session{} // by user
	var errs []error
	err := eachActiveSession(ctx, a, func(d projections.SessionDoc) {
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
		return nil, err
	}
	var ended []string
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
		for _, s := range sessions {
			if _, err := endSession(ctx, a, s.SessionID, events.EndBalanceExhausted, now); err != nil {
				errs = append(errs, err)
				continue
			}
			ended = append(ended, s.SessionID)
		}
	}
	return ended, errors.Join(errs...)
}

// reapSpentBalances is ReapSpentBalances as a scheduled job: it answers the sessions it ended.
func reapSpentBalances(ctx context.Context, a *app.App) (any, error) {
	ended, err := ReapSpentBalances(ctx, a)
	return map[string][]string{"ended": ended}, err
}
