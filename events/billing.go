package events

import (
	"math"
	"time"
)

// SessionEndedData is the data of the event that ends a session ("session.ended", on the
// session's stream "session-<id>"). It carries the session's usage, so that billing is a fold
// over the log: the sessions capability writes it, billing reads it.
type SessionEndedData struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	// Reason is "closed", "expired", "terminated", "balance_exhausted" or "error".
	Reason  string    `json:"reason"`
	EndedAt time.Time `json:"ended_at"` // RFC 3339
	// BillableSeconds runs from ready to end; 0 if the session never became ready.
	BillableSeconds float64 `json:"billable_seconds"`
	// CentsPerMinute is the price captured when the session was requested, so that a later price
	// change never rewrites history.
	CentsPerMinute int64 `json:"cents_per_minute"`
	// ChargeCents is ChargeCents(BillableSeconds, CentsPerMinute).
	ChargeCents int64 `json:"charge_cents"`
}

// Reasons a session ends, as carried by SessionEndedData.Reason.
const (
	EndClosed           = "closed"
	EndExpired          = "expired"
	EndTerminated       = "terminated"
	EndBalanceExhausted = "balance_exhausted"
	EndError            = "error"
)

// Spent is the spending policy: a balance is used up once the usage accrued by the user's
// running sessions is counted, and the reaper stops those sessions then.
func Spent(balanceCents, accruedCents int64) bool { return balanceCents-accruedCents <= 0 }

// ChargeCents is what a session of seconds billable seconds costs at centsPerMinute:
// ceil(seconds * centsPerMinute / 60), rounded up to the cent once per session. The seconds are
// taken to the microsecond first and the rest is integer arithmetic, so that 60 s at 1 cent is
// exactly 1 cent and never 2 through a floating-point residue. Negative or NaN inputs cost 0.
func ChargeCents(seconds float64, centsPerMinute int64) int64 {
	if !(seconds > 0) || centsPerMinute <= 0 {
		return 0
	}
	const microsPerMinute = 60_000_000
	us := int64(math.Round(seconds * 1e6))
	// Sessions are bounded by hours, not centuries; past this the product would overflow.
	if us > math.MaxInt64/centsPerMinute {
		return int64(math.Ceil(seconds * float64(centsPerMinute) / 60))
	}
	return (us*centsPerMinute + microsPerMinute - 1) / microsPerMinute
}
