package events

// The account aggregate: one stream per user, "account-<user id>", holding every movement of the
// user's prepaid balance except session usage, which is carried by the event that ends a session
// (session.ended, on the session's stream) so that billing is a fold over the session log.
// Amounts are int64 cents.

// AccountStream is the stream of a user's account.
func AccountStream(userID string) string { return "account-" + userID }

// Event types of the account aggregate.
const (
	// CreditGranted: free credit (the sign-up credit, an operator's grant).
	CreditGranted = "account.credit_granted"
	// DepositRequested: a Stripe Checkout Session was created for a deposit.
	DepositRequested = "account.deposit_requested"
	// DepositSucceeded: the Checkout Session was paid; the balance grows by the amount.
	DepositSucceeded = "account.deposit_succeeded"
	// DepositFailed: the asynchronous payment failed; nothing is credited.
	DepositFailed = "account.deposit_failed"
	// PaymentRefunded: a Stripe refund; the balance shrinks by the refunded amount.
	PaymentRefunded = "account.payment_refunded"
	// StripeCustomerCreated: the user's Stripe customer id.
	StripeCustomerCreated = "account.stripe_customer_created"
	// AgentJobCharged / AgentJobRefunded: the agent-job charge and its refund.
	AgentJobCharged  = "account.agent_job_charged"
	AgentJobRefunded = "account.agent_job_refunded"
)

// CreditGrantedData is the data of CreditGranted.
type CreditGrantedData struct {
	CreditID    string `json:"credit_id"`
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason"` // "signup", or the operator's reason
}
