package functions

import (
	"context"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
)

// updateAccount changes userID's account through the write path and returns the events it
// appended. Deposits, Stripe's webhook, the sign-up credit, operator grants and agent-job
// charges and refunds (Account.ChargeAgentJob, Account.RefundAgentJob) all go through it; their
// event ids are derived from the fact, so a racing writer of the same fact makes the decision
// run again, see the fact recorded and return nothing: 50 concurrent deliveries of one webhook
// credit once.
func updateAccount(ctx context.Context, a *app.App, userID string, decide func(acct *events.Account) ([]events.Envelope, error)) ([]events.Envelope, error) {
	_, stored, err := app.Update(ctx, a, events.AccountStream(userID), events.AccountOf(userID), decide)
	return stored, err
}
