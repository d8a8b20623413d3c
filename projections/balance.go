package projections

import "time"

// BalanceCollection holds one Balance per user, keyed by user id.
const BalanceCollection = "balances"

// Balance is a user's prepaid balance, folded from the account stream and the usage carried by
// the events that end sessions. Amounts are int64 cents; BalanceCents = TotalDepositedCents -
// TotalSpentCents.
type Balance struct {
	UserID              string    `json:"user_id"`
	BalanceCents        int64     `json:"balance_cents"`
	TotalDepositedCents int64     `json:"total_deposited_cents"` // deposits + grants - Stripe refunds
	TotalSpentCents     int64     `json:"total_spent_cents"`     // session usage + agent jobs - their refunds
	StripeCustomerID    string    `json:"stripe_customer_id,omitempty"`
	LastUpdated         time.Time `json:"last_updated"`
}
