package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/codeset/codeset/events"
)

// DecideAccount loads userID's account stream, asks decide for the events to append, and appends
// them at the version it loaded. A concurrent writer (ErrConcurrency) or a racing writer of the
// same fact (ErrIDConflict: the event id is derived from the fact) makes it load and decide
// again, and the decision then sees the fact recorded and returns nothing: this is how 50
// concurrent deliveries of one webhook credit once. Agent jobs charge and refund through it too
// (Account.ChargeAgentJob, Account.RefundAgentJob).
func (a *App) DecideAccount(ctx context.Context, userID string, decide func(acct *events.Account) ([]events.Envelope, error)) ([]events.Envelope, error) {
	stream := events.AccountStream(userID)
	for attempt := 0; ; attempt++ {
		evs, err := a.Events.Load(ctx, stream, 1)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", stream, err)
		}
		acct, err := events.FoldAccount(userID, evs)
		if err != nil {
			return nil, err
		}
		out, err := decide(acct)
		if err != nil || len(out) == 0 {
			return nil, err
		}
		stored, err := a.Record(ctx, stream, acct.Version, out...)
		if (errors.Is(err, events.ErrConcurrency) || errors.Is(err, events.ErrIDConflict)) && attempt < 100 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return stored, nil
	}
}
