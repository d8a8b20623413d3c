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

// DepositRequestedData is the data of DepositRequested: a Checkout Session was created for a
// deposit. Nothing is credited until the payment succeeds.
type DepositRequestedData struct {
	DepositID         string `json:"deposit_id"`
	CheckoutSessionID string `json:"checkout_session_id"`
	AmountCents       int64  `json:"amount_cents"`
	Currency          string `json:"currency"`
	CustomerID        string `json:"customer_id,omitempty"`
}

// DepositSucceededData is the data of DepositSucceeded, recorded once per Checkout Session.
type DepositSucceededData struct {
	DepositID         string `json:"deposit_id,omitempty"`
	CheckoutSessionID string `json:"checkout_session_id"`
	PaymentIntentID   string `json:"payment_intent_id,omitempty"`
	AmountCents       int64  `json:"amount_cents"`
	Currency          string `json:"currency"`
	StripeEventID     string `json:"stripe_event_id"` // the webhook event that first reported it
}

// DepositFailedData is the data of DepositFailed.
type DepositFailedData struct {
	DepositID         string `json:"deposit_id,omitempty"`
	CheckoutSessionID string `json:"checkout_session_id"`
	StripeEventID     string `json:"stripe_event_id"`
}

// PaymentRefundedData is the data of PaymentRefunded. Stripe reports refunds of a charge as the
// charge's cumulative amount refunded, so each event debits the growth of that cumulative amount
// and records where it got to: a duplicate or an older report debits nothing.
type PaymentRefundedData struct {
	ChargeID              string   `json:"charge_id"`
	PaymentIntentID       string   `json:"payment_intent_id,omitempty"`
	RefundIDs             []string `json:"refund_ids,omitempty"`
	AmountCents           int64    `json:"amount_cents"`            // debited by this event
	CumulativeRefundCents int64    `json:"cumulative_refund_cents"` // refunded on the charge so far
	ChargeAmountCents     int64    `json:"charge_amount_cents"`
	StripeEventID         string   `json:"stripe_event_id"`
}

// StripeCustomerCreatedData is the data of StripeCustomerCreated.
type StripeCustomerCreatedData struct {
	CustomerID string `json:"customer_id"`
}

// AgentJobChargedData is the data of AgentJobCharged; the price is the one configured when the
// job was accepted.
type AgentJobChargedData struct {
	JobID       string `json:"job_id"`
	AmountCents int64  `json:"amount_cents"`
}

// AgentJobRefundedData is the data of AgentJobRefunded (a job that failed through no fault of
// the user). It never exceeds what the job was charged.
type AgentJobRefundedData struct {
	JobID       string `json:"job_id"`
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason,omitempty"`
}
