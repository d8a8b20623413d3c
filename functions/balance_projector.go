package functions

import (
	"context"
	"fmt"
	"strings"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The balance projector keeps the balance read model: a ledger entry per money-moving event
// (keyed by the event id, so a redelivered event overwrites its own entry) and a Balance per
// user recomputed from all of that user's entries. Recomputing instead of incrementing is what
// makes it idempotent in every order and after every crash: a balance is always exactly the sum
// of the entries written so far.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:   "BalanceProjector",
		Wants:  projections.WantsBalance,
		Handle: ProjectBalance,
		Inline: true,
	})
}

// ProjectBalance applies one event to the balance read model.
func ProjectBalance(ctx context.Context, a *App, e events.Envelope) error {
	entry, ok, err := projections.EntryOf(e)
	if err != nil {
		return err
	}
	userID := entry.UserID
	if userID == "" {
		userID = strings.TrimPrefix(e.Stream, "account-")
	}
	var customerID string
	if e.Type == events.StripeCustomerCreated {
		var d events.StripeCustomerCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		customerID = d.CustomerID
	}
	if e.Type == events.DepositSucceeded {
		var d events.DepositSucceededData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if d.PaymentIntentID != "" {
			if err := projections.Put(ctx, a.Docs, projections.PaymentCollection, d.PaymentIntentID,
				projections.Payment{UserID: userID, CheckoutSessionID: d.CheckoutSessionID}); err != nil {
				return fmt.Errorf("payment %s: %w", d.PaymentIntentID, err)
			}
		}
	}
	if !ok && customerID == "" {
		return nil
	}
	if ok {
		if err := projections.Put(ctx, a.Docs, projections.LedgerCollection, entry.ID, entry); err != nil {
			return fmt.Errorf("ledger entry %s: %w", entry.ID, err)
		}
	}
	entries, err := projections.LedgerOf(ctx, a.Docs, userID)
	if err != nil {
		return err
	}
	next := projections.FoldBalance(userID, customerID, entries)
	return projections.Update(ctx, a.Docs, projections.BalanceCollection, userID, func(b *projections.Balance, exists bool) (bool, error) {
		if next.StripeCustomerID == "" {
			next.StripeCustomerID = b.StripeCustomerID
		}
		// Entries are only ever added, so of two folds the one over more entries is the later
		// one: a projector that read the ledger before a concurrent one must not overwrite it.
		if exists && next.Summary.Transactions < b.Summary.Transactions {
			if b.StripeCustomerID == "" && next.StripeCustomerID != "" {
				b.StripeCustomerID = next.StripeCustomerID
				return true, nil
			}
			return false, nil
		}
		*b = next
		return true, nil
	})
}
