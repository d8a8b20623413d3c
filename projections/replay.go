package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/codeset/codeset/events"
)

// Billing replay: every balance recomputed from the event log alone, and compared with the
// balance read model. The two must agree to the cent; any difference is a bug or a lost
// projection, and `codeset billing replay` exits 1 on it.

// Replay folds events into balances, one per user. It is the same fold as the projector's
// (EntryOf then Balance.Add), fed by the log instead of the ledger documents.
type Replay struct {
	User     string // only this user, when set
	Balances map[string]*Balance
	Events   int64 // events read
}

// NewReplay starts an empty replay, for every user or only user.
func NewReplay(user string) *Replay { return &Replay{User: user, Balances: map[string]*Balance{}} }

// Apply folds one event.
func (r *Replay) Apply(e events.Envelope) error {
	r.Events++
	if !WantsBalance(e) {
		return nil
	}
	if e.Type == events.SessionEnded {
		if done, err := r.addSessionEnd(e); done || err != nil {
			return err
		}
	}
	entry, ok, err := EntryOf(e)
	if err != nil {
		return err
	}
	if ok {
		if r.User != "" && entry.UserID != r.User {
			return nil
		}
		r.balance(entry.UserID).Add(entry)
		return nil
	}
	if e.Type == events.StripeCustomerCreated {
		user := strings.TrimPrefix(e.Stream, "account-")
		if r.User != "" && user != r.User {
			return nil
		}
		var d events.StripeCustomerCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		r.balance(user).StripeCustomerID = d.CustomerID
	}
	return nil
}

func (r *Replay) balance(user string) *Balance {
	b, ok := r.Balances[user]
	if !ok {
		b = &Balance{UserID: user}
		r.Balances[user] = b
	}
	return b
}

// Run scans the whole log (the account streams and the session streams) into the replay.
func (r *Replay) Run(ctx context.Context, store events.Store) error {
	for _, prefix := range []string{"account-", "session-"} {
		if r.User != "" && prefix == "account-" {
			prefix = events.AccountStream(r.User)
		}
		if err := store.Scan(ctx, prefix, r.Apply); err != nil {
			return fmt.Errorf("replay %s: %w", prefix, err)
		}
	}
	return nil
}

// Difference is one user's line of the reconciliation.
type Difference struct {
	UserID   string
	Replayed Balance
	Stored   Balance
	Missing  bool // no balance document at all
}

// Equal reports whether the read model agrees with the replay on every amount and count.
func (d Difference) Equal() bool {
	r, s := d.Replayed, d.Stored
	return !d.Missing && r.BalanceCents == s.BalanceCents && r.TotalDepositedCents == s.TotalDepositedCents &&
		r.TotalSpentCents == s.TotalSpentCents && r.StripeCustomerID == s.StripeCustomerID &&
		r.Summary.Transactions == s.Summary.Transactions && r.Summary.TotalSessionCostCents == s.Summary.TotalSessionCostCents
}

// Reconcile compares the replay with the stored balances: one line per user of either side,
// sorted by user id. A stored balance the log does not explain is a difference too.
func (r *Replay) Reconcile(ctx context.Context, docs DocStore) ([]Difference, error) {
	stored := map[string]Balance{}
	if r.User != "" {
		b, err := Get[Balance](ctx, docs, BalanceCollection, r.User)
		if err == nil {
			stored[r.User] = b
		} else if !isNotFound(err) {
			return nil, err
		}
	} else {
		q := Query{Limit: 1000}
		for {
			page, next, err := List[Balance](ctx, docs, BalanceCollection, q)
			if err != nil {
				return nil, fmt.Errorf("stored balances: %w", err)
			}
			for _, b := range page {
				stored[b.UserID] = b
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
	}
	users := map[string]bool{}
	for u := range r.Balances {
		users[u] = true
	}
	for u := range stored {
		users[u] = true
	}
	out := make([]Difference, 0, len(users))
	for u := range users {
		d := Difference{UserID: u, Stored: stored[u]}
		if b, ok := r.Balances[u]; ok {
			d.Replayed = *b
		} else {
			d.Replayed = Balance{UserID: u}
		}
		_, has := stored[u]
		d.Missing = !has && d.Replayed.Summary.Transactions > 0
		if !has && !d.Missing {
			// A user whose only account fact is a customer id has nothing to reconcile.
			d.Stored = Balance{UserID: u, StripeCustomerID: d.Replayed.StripeCustomerID}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// PrintReconciliation writes the table and returns how many lines differ.
func PrintReconciliation(w io.Writer, diffs []Difference, events int64) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "user\treplayed\tstored\tdeposited\tspent\ttransactions\tstatus\t")
	bad := 0
	for _, d := range diffs {
		status := "ok"
		if d.Missing {
			status = "MISSING"
		} else if !d.Equal() {
			status = fmt.Sprintf("DIFF %+d", d.Stored.BalanceCents-d.Replayed.BalanceCents)
		}
		if status != "ok" {
			bad++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d/%d\t%d/%d\t%d/%d\t%s\t\n", d.UserID, d.Replayed.BalanceCents, d.Stored.BalanceCents,
			d.Replayed.TotalDepositedCents, d.Stored.TotalDepositedCents, d.Replayed.TotalSpentCents, d.Stored.TotalSpentCents,
			d.Replayed.Summary.Transactions, d.Stored.Summary.Transactions, status)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d users, %d events replayed, %d differences\n", len(diffs), events, bad)
	return bad
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
