package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// RequirePositiveBalance answers nil when userID's prepaid balance is above zero, and a 402
// *httpapi.Error otherwise: no session (and no agent job) starts on a spent balance. It reads the
// balance read model, which the inline balance projector keeps current with every write, and
// applies the spending policy (events.Spent) with nothing accrued yet.
func RequirePositiveBalance(ctx context.Context, a *app.App, userID string) error {
	b, err := projections.Get[projections.Balance](ctx, a.Docs, projections.BalanceCollection, userID)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return fmt.Errorf("balance of %s: %w", userID, err)
	}
	if !events.Spent(b.BalanceCents, 0) {
		return nil
	}
	return httpapi.Errorf(http.StatusPaymentRequired,
		"insufficient balance: %d cents; deposit money with POST /billing/deposit (or ask an operator for credit) before starting a session", b.BalanceCents)
}
