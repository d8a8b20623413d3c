package functions

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// userCredits is the spec's UserCredits.
type userCredits struct {
	UserID           string    `json:"user_id"`
	Balance          int64     `json:"balance"`
	TotalDeposited   int64     `json:"total_deposited"`
	TotalSpent       int64     `json:"total_spent"`
	StripeCustomerID *string   `json:"stripe_customer_id"`
	LastUpdated      time.Time `json:"last_updated"`
}

// GetUserBalance answers the caller's balance from the balance read model.
func GetUserBalance(a *app.App, w http.ResponseWriter, r *http.Request) error {
	userID := app.Caller(r.Context()).UserID
	b, err := balanceOf(a, r, userID)
	if err != nil {
		return err
	}
	out := userCredits{UserID: userID, Balance: b.BalanceCents, TotalDeposited: b.TotalDepositedCents,
		TotalSpent: b.TotalSpentCents, LastUpdated: b.LastUpdated}
	if b.StripeCustomerID != "" {
		out.StripeCustomerID = &b.StripeCustomerID
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// balanceOf reads a user's Balance; a user with no movement yet has the zero balance, last
// updated now.
func balanceOf(a *app.App, r *http.Request, userID string) (projections.Balance, error) {
	b, err := projections.Get[projections.Balance](r.Context(), a.Docs, projections.BalanceCollection, userID)
	if errors.Is(err, projections.ErrNotFound) {
		return projections.Balance{UserID: userID, LastUpdated: a.Clock.Now().UTC()}, nil
	}
	if err != nil {
		return b, fmt.Errorf("balance of %s: %w", userID, err)
	}
	if b.LastUpdated.IsZero() {
		b.LastUpdated = a.Clock.Now().UTC()
	}
	return b, nil
}
