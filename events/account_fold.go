package events

import (
	"errors"
	"fmt"
	"time"
)

// Domain errors of the account aggregate.
var (
	// ErrInvalidAmount: an amount that is zero or negative where money must move.
	ErrInvalidAmount = errors.New("account: amount must be positive")
	// ErrNotCharged: a refund for an agent job that was never charged.
	ErrNotCharged = errors.New("account: agent job was not charged")
)

// Deposit is what the account knows of one Checkout Session.
type Deposit struct {
	DepositID   string
	AmountCents int64  // requested, then what was paid
	Status      string // "requested", "succeeded" or "failed"
}

// Account is the fold of one account stream: what the decisions need. Session usage is not on
// this stream and is not part of it.
type Account struct {
	UserID     string
	Version    int64
	CustomerID string
	Deposits   map[string]*Deposit // by Checkout Session id
	Refunded   map[string]int64    // by charge id: cumulative cents refunded
	JobCharged map[string]int64    // by job id
	JobRefund  map[string]int64    // by job id
	Grants     map[string]bool     // by credit id
	// NetCents is what this stream's movements add up to: credits and deposits, less Stripe
	// refunds and agent-job charges, plus agent-job refunds. The balance is NetCents less the
	// session usage, which the sessions' streams carry.
	NetCents int64
}

// NewAccount is the empty account of userID.
func NewAccount(userID string) *Account {
	return &Account{UserID: userID, Deposits: map[string]*Deposit{}, Refunded: map[string]int64{},
		JobCharged: map[string]int64{}, JobRefund: map[string]int64{}, Grants: map[string]bool{}}
}

// FoldAccount folds the events of an account stream, in order.
func FoldAccount(userID string, evs []Envelope) (*Account, error) {
	a := NewAccount(userID)
	for _, e := range evs {
		if err := a.Apply(e); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Apply folds one event of the account stream.
func (a *Account) Apply(e Envelope) error {
	a.Version = e.Version
	switch e.Type {
	case StripeCustomerCreated:
		var d StripeCustomerCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.CustomerID = d.CustomerID
	case CreditGranted:
		var d CreditGrantedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.Grants[d.CreditID] = true
		a.NetCents += d.AmountCents
	case DepositRequested:
		var d DepositRequestedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if _, ok := a.Deposits[d.CheckoutSessionID]; !ok {
			a.Deposits[d.CheckoutSessionID] = &Deposit{DepositID: d.DepositID, AmountCents: d.AmountCents, Status: "requested"}
		}
		if d.CustomerID != "" && a.CustomerID == "" {
			a.CustomerID = d.CustomerID
		}
	case DepositSucceeded:
		var d DepositSucceededData
		if err := e.Decode(&d); err != nil {
			return err
		}
		dep := a.deposit(d.CheckoutSessionID, d.DepositID)
		dep.AmountCents, dep.Status = d.AmountCents, "succeeded"
		a.NetCents += d.AmountCents
	case DepositFailed:
		var d DepositFailedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.deposit(d.CheckoutSessionID, d.DepositID).Status = "failed"
	case PaymentRefunded:
		var d PaymentRefundedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.Refunded[d.ChargeID] = max(a.Refunded[d.ChargeID], d.CumulativeRefundCents)
		a.NetCents -= d.AmountCents
	case AgentJobCharged:
		var d AgentJobChargedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.JobCharged[d.JobID] += d.AmountCents
		a.NetCents -= d.AmountCents
	case AgentJobRefunded:
		var d AgentJobRefundedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		a.JobRefund[d.JobID] += d.AmountCents
		a.NetCents += d.AmountCents
	}
	return nil
}

func (a *Account) deposit(csID, depositID string) *Deposit {
	dep, ok := a.Deposits[csID]
	if !ok {
		dep = &Deposit{DepositID: depositID}
		a.Deposits[csID] = dep
	}
	return dep
}

// Decisions: each returns the events to append at a.Version, or none when the fact is already
// recorded (a duplicate delivery), or a domain error. Event ids are derived from what they
// record, so two racing writers of the same fact collide in the store instead of doubling it.

// RecordCustomer records the user's Stripe customer, once.
func (a *Account) RecordCustomer(customerID string, at time.Time) ([]Envelope, error) {
	if a.CustomerID != "" {
		return nil, nil
	}
	e, err := New("stripe_customer:"+a.UserID, a.UserID, StripeCustomerCreated, at, StripeCustomerCreatedData{CustomerID: customerID})
	return accountEvents(e, err)
}

// RequestDeposit records a Checkout Session created for a deposit.
func (a *Account) RequestDeposit(d DepositRequestedData, at time.Time) ([]Envelope, error) {
	if d.AmountCents <= 0 {
		return nil, ErrInvalidAmount
	}
	if _, ok := a.Deposits[d.CheckoutSessionID]; ok {
		return nil, nil
	}
	e, err := New("deposit_requested:"+d.CheckoutSessionID, a.UserID, DepositRequested, at, d)
	return accountEvents(e, err)
}

// SucceedDeposit credits a paid Checkout Session, exactly once whatever the duplicates and the
// order of the webhooks (a failure reported earlier does not stop money that did arrive).
func (a *Account) SucceedDeposit(d DepositSucceededData, at time.Time) ([]Envelope, error) {
	if d.AmountCents <= 0 {
		return nil, ErrInvalidAmount
	}
	if dep, ok := a.Deposits[d.CheckoutSessionID]; ok {
		if dep.Status == "succeeded" {
			return nil, nil
		}
		if d.DepositID == "" {
			d.DepositID = dep.DepositID
		}
	}
	e, err := New("deposit_succeeded:"+d.CheckoutSessionID, a.UserID, DepositSucceeded, at, d)
	return accountEvents(e, err)
}

// FailDeposit marks an asynchronous payment failed; it never undoes a success.
func (a *Account) FailDeposit(d DepositFailedData, at time.Time) ([]Envelope, error) {
	if dep, ok := a.Deposits[d.CheckoutSessionID]; ok {
		if dep.Status != "requested" {
			return nil, nil
		}
		if d.DepositID == "" {
			d.DepositID = dep.DepositID
		}
	}
	e, err := New("deposit_failed:"+d.CheckoutSessionID, a.UserID, DepositFailed, at, d)
	return accountEvents(e, err)
}

// RefundPayment debits what a charge's cumulative refunded amount grew by since the last report,
// never more than the charge itself: duplicates and late, older reports debit nothing.
func (a *Account) RefundPayment(d PaymentRefundedData, at time.Time) ([]Envelope, error) {
	cum := d.CumulativeRefundCents
	if d.ChargeAmountCents > 0 {
		cum = min(cum, d.ChargeAmountCents)
	}
	prev := a.Refunded[d.ChargeID]
	if cum <= prev {
		return nil, nil
	}
	d.CumulativeRefundCents, d.AmountCents = cum, cum-prev
	e, err := New(fmt.Sprintf("payment_refunded:%s:%d", d.ChargeID, cum), a.UserID, PaymentRefunded, at, d)
	return accountEvents(e, err)
}

// ChargeAgentJob charges an agent job once.
func (a *Account) ChargeAgentJob(d AgentJobChargedData, at time.Time) ([]Envelope, error) {
	if d.AmountCents <= 0 {
		return nil, ErrInvalidAmount
	}
	if _, ok := a.JobCharged[d.JobID]; ok {
		return nil, nil
	}
	e, err := New("agent_job_charged:"+d.JobID, a.UserID, AgentJobCharged, at, d)
	return accountEvents(e, err)
}

// ChargeAgentJobWithin charges an agent job once, when the balance covers it: this stream's
// movements (NetCents) less sessionUsageCents, the session usage billed so far (carried by the
// sessions' streams; the caller reads it from the balance read model). Deciding on this stream
// serialises the charges: two jobs asked for at once are each checked against the other's
// charge, so together they never spend more than the balance. A job already charged decides
// nothing (a retried request).
func (a *Account) ChargeAgentJobWithin(d AgentJobChargedData, at time.Time, sessionUsageCents int64) ([]Envelope, error) {
	if _, ok := a.JobCharged[d.JobID]; ok {
		return nil, nil
	}
	if available := a.NetCents - sessionUsageCents; available < d.AmountCents {
		return nil, fmt.Errorf("%w: %d cents available, the job costs %d", ErrInsufficientBalance, available, d.AmountCents)
	}
	return a.ChargeAgentJob(d, at)
}

// RefundAgentJob gives back what an agent job was charged, once, never more.
func (a *Account) RefundAgentJob(d AgentJobRefundedData, at time.Time) ([]Envelope, error) {
	charged, ok := a.JobCharged[d.JobID]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", d.JobID, ErrNotCharged)
	}
	if a.JobRefund[d.JobID] > 0 {
		return nil, nil
	}
	if d.AmountCents <= 0 || d.AmountCents > charged {
		d.AmountCents = charged
	}
	e, err := New("agent_job_refunded:"+d.JobID, a.UserID, AgentJobRefunded, at, d)
	return accountEvents(e, err)
}

// GrantCredit gives free credit under its credit id, once.
func (a *Account) GrantCredit(d CreditGrantedData, at time.Time) ([]Envelope, error) {
	if d.AmountCents <= 0 {
		return nil, ErrInvalidAmount
	}
	if a.Grants[d.CreditID] {
		return nil, nil
	}
	e, err := New("credit_granted:"+d.CreditID, a.UserID, CreditGranted, at, d)
	return accountEvents(e, err)
}

func accountEvents(e Envelope, err error) ([]Envelope, error) {
	if err != nil {
		return nil, err
	}
	return []Envelope{e}, nil
}
