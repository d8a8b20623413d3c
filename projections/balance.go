package projections

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/codeset/codeset/events"
)

// The balance read model: one Balance document per user and one LedgerEntry document per
// transaction (the usage ledger), both pure folds of the account streams and of the events that
// end sessions. A ledger entry is keyed by the id of the event it comes from, so applying an
// event twice overwrites the entry with itself, and a Balance is the sum of its user's entries.

// Collections of the balance read model.
const (
	BalanceCollection = "balances"
	LedgerCollection  = "billing_ledger"
)

// Transaction types of the usage ledger, as the spec names them.
const (
	TxDeposit        = "deposit"         // a Stripe deposit or a credit grant
	TxRefund         = "refund"          // a Stripe refund (money back to the card: a debit)
	TxSessionUsage   = "session_usage"   // a session's billed time
	TxAgentJobUsage  = "agent_job_usage" // an agent job's charge
	TxAgentJobRefund = "agent_job_refund"
)

// LedgerEntry is one transaction of a user's usage history.
type LedgerEntry struct {
	ID              string    `json:"id"` // the id of the event it comes from
	UserID          string    `json:"user_id"`
	Type            string    `json:"type"`
	AmountCents     int64     `json:"amount_cents"` // positive credits, negative debits
	Description     string    `json:"description"`
	CreatedAt       time.Time `json:"created_at"`
	AtMicros        int64     `json:"at_us"` // CreatedAt in unix microseconds: the sort key
	SessionID       string    `json:"session_id,omitempty"`
	DurationMinutes *float64  `json:"duration_minutes,omitempty"`
	JobID           string    `json:"job_id,omitempty"`
	Grant           bool      `json:"grant,omitempty"` // a free credit rather than a payment
}

// Summary is the usage summary of a set of transactions.
type Summary struct {
	Transactions          int64   `json:"transactions"`
	TotalSessions         int64   `json:"total_sessions"`
	TotalSessionSeconds   float64 `json:"total_session_seconds"`
	TotalSessionCostCents int64   `json:"total_session_cost_cents"`
	TotalAgentJobs        int64   `json:"total_agent_jobs"`
	AgentJobCostCents     int64   `json:"agent_job_cost_cents"`   // charged, before refunds
	AgentJobRefundCents   int64   `json:"agent_job_refund_cents"` // given back
	DepositCents          int64   `json:"deposit_cents"`          // paid deposits
	GrantCents            int64   `json:"grant_cents"`            // free credit
	RefundCents           int64   `json:"refund_cents"`           // Stripe refunds (positive)
}

// Add counts one entry.
func (s *Summary) Add(e LedgerEntry) {
	s.Transactions++
	switch e.Type {
	case TxSessionUsage:
		s.TotalSessions++
		if e.DurationMinutes != nil {
			s.TotalSessionSeconds += *e.DurationMinutes * 60
		}
		s.TotalSessionCostCents -= e.AmountCents
	case TxAgentJobUsage:
		s.TotalAgentJobs++
		s.AgentJobCostCents -= e.AmountCents
	case TxAgentJobRefund:
		s.AgentJobRefundCents += e.AmountCents
	case TxDeposit:
		if e.Grant {
			s.GrantCents += e.AmountCents
		} else {
			s.DepositCents += e.AmountCents
		}
	case TxRefund:
		s.RefundCents -= e.AmountCents
	}
}

// Deposited is money in: deposits and grants, less Stripe refunds.
func (s Summary) Deposited() int64 { return s.DepositCents + s.GrantCents - s.RefundCents }

// Spent is money used: sessions and agent jobs, less agent-job refunds.
func (s Summary) Spent() int64 {
	return s.TotalSessionCostCents + s.AgentJobCostCents - s.AgentJobRefundCents
}

// Balance is a user's prepaid balance: the fold of the user's ledger entries (BalanceCents =
// TotalDepositedCents - TotalSpentCents = the sum of the entries' amounts) plus the Stripe
// customer from the account stream.
type Balance struct {
	UserID              string    `json:"user_id"`
	BalanceCents        int64     `json:"balance_cents"`
	TotalDepositedCents int64     `json:"total_deposited_cents"`
	TotalSpentCents     int64     `json:"total_spent_cents"`
	StripeCustomerID    string    `json:"stripe_customer_id,omitempty"`
	LastUpdated         time.Time `json:"last_updated"`
	Summary             Summary   `json:"summary"`
	// Pending lists the ledger entries counted in the totals but not yet written (the
	// projector's marks, see functions/balance_projector.go); empty between events.
	Pending []string `json:"pending,omitempty"`
}

// Add folds one ledger entry into the balance.
func (b *Balance) Add(e LedgerEntry) {
	b.Summary.Add(e)
	b.BalanceCents += e.AmountCents
	b.TotalDepositedCents = b.Summary.Deposited()
	b.TotalSpentCents = b.Summary.Spent()
	if e.CreatedAt.After(b.LastUpdated) {
		b.LastUpdated = e.CreatedAt
	}
}

// FoldBalance is the balance of userID made of entries (in any order).
func FoldBalance(userID, customerID string, entries []LedgerEntry) Balance {
	b := Balance{UserID: userID, StripeCustomerID: customerID}
	for _, e := range entries {
		b.Add(e)
	}
	return b
}

// WantsBalance reports whether e moves a balance: account events and session ends.
func WantsBalance(e events.Envelope) bool {
	return e.Type == events.SessionEnded || strings.HasPrefix(e.Stream, "account-")
}

// EntryOf maps an event to its ledger entry; ok is false for events that move no money.
func EntryOf(e events.Envelope) (entry LedgerEntry, ok bool, err error) {
	entry = LedgerEntry{ID: e.ID, UserID: e.UserID, CreatedAt: e.OccurredAt.UTC()}
	switch e.Type {
	case events.CreditGranted:
		var d events.CreditGrantedData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		entry.Type, entry.AmountCents, entry.Grant = TxDeposit, d.AmountCents, true
		entry.Description = "Credit granted: " + d.Reason
	case events.DepositSucceeded:
		var d events.DepositSucceededData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		entry.Type, entry.AmountCents = TxDeposit, d.AmountCents
		entry.Description = fmt.Sprintf("Deposit of %s via Stripe", usd(d.AmountCents))
	case events.PaymentRefunded:
		var d events.PaymentRefundedData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		entry.Type, entry.AmountCents = TxRefund, -d.AmountCents
		entry.Description = fmt.Sprintf("Refund of %s to the card (charge %s)", usd(d.AmountCents), d.ChargeID)
	case events.AgentJobCharged:
		var d events.AgentJobChargedData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		entry.Type, entry.AmountCents, entry.JobID = TxAgentJobUsage, -d.AmountCents, d.JobID
		entry.Description = "Agent job " + d.JobID
	case events.AgentJobRefunded:
		var d events.AgentJobRefundedData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		entry.Type, entry.AmountCents, entry.JobID = TxAgentJobRefund, d.AmountCents, d.JobID
		entry.Description = "Refund of agent job " + d.JobID
		if d.Reason != "" {
			entry.Description += ": " + d.Reason
		}
	case events.SessionEnded:
		var d events.SessionEndedData
		if err := e.Decode(&d); err != nil {
			return entry, false, err
		}
		charge := d.ChargeCents
		if charge == 0 {
			charge = events.ChargeCents(d.BillableSeconds, d.CentsPerMinute)
		}
		if charge <= 0 {
			return entry, false, nil // never ready, nothing billed
		}
		if d.UserID != "" {
			entry.UserID = d.UserID
		}
		if !d.EndedAt.IsZero() {
			entry.CreatedAt = d.EndedAt.UTC()
		}
		minutes := d.BillableSeconds / 60
		entry.Type, entry.AmountCents, entry.SessionID, entry.DurationMinutes = TxSessionUsage, -charge, d.SessionID, &minutes
		entry.Description = fmt.Sprintf("Session %s: %.2f min at %d¢/min (%s)", d.SessionID, minutes, d.CentsPerMinute, d.Reason)
	default:
		return entry, false, nil
	}
	if entry.UserID == "" {
		return entry, false, fmt.Errorf("%s %s@%d carries no user", e.Type, e.Stream, e.Version)
	}
	entry.AtMicros = entry.CreatedAt.UnixMicro()
	return entry, true, nil
}

func usd(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)
}

// LedgerOf reads every ledger entry of userID, in no particular order.
func LedgerOf(ctx context.Context, s DocStore, userID string) ([]LedgerEntry, error) {
	var all []LedgerEntry
	q := Query{Where: []Filter{{Field: "user_id", Value: userID}}, Limit: 2000}
	for {
		page, next, err := List[LedgerEntry](ctx, s, LedgerCollection, q)
		if err != nil {
			return nil, fmt.Errorf("ledger of %s: %w", userID, err)
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		q.Cursor = next
	}
}

// PaymentCollection maps a Stripe PaymentIntent id to the user whose deposit it paid, so that a
// refund of its charge finds its account.
const PaymentCollection = "billing_payments"

// Payment is a paid deposit's PaymentIntent.
type Payment struct {
	UserID            string `json:"user_id"`
	CheckoutSessionID string `json:"checkout_session_id"`
}
