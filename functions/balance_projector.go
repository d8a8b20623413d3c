package functions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The balance projector keeps the balance read model: a Balance per user and a ledger entry per
// money-moving event, keyed by the event id. Consumers see events at least once, in any order,
// possibly twice and concurrently, and a process may die between any two writes; the entry must
// still count exactly once. Three writes make that so:
//
//  1. in the Balance's transaction: unless the entry is pending there or already in the ledger,
//     add it to the totals and mark it pending;
//  2. write the ledger entry (its existence now says "counted");
//  3. in the Balance's transaction: clear the pending mark.
//
// A crash after 1 leaves the mark, so the redelivery does not add again; a crash after 2 leaves
// the entry, which says the same. The pending list only ever holds entries in flight.

// ProjectBalance applies one event to the balance read model. It runs inline.
func ProjectBalance(ctx context.Context, a *app.App, e events.Envelope) error {
	entry, ok, err := projections.EntryOf(e)
	if err != nil {
		return err
	}
	userID := entry.UserID
	if userID == "" {
		userID = strings.TrimPrefix(e.Stream, "account-")
	}
	switch e.Type {
	case events.StripeCustomerCreated:
		var d events.StripeCustomerCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		return projections.Update(ctx, a.Docs, projections.BalanceCollection, userID, func(b *projections.Balance, _ bool) (bool, error) {
			if b.StripeCustomerID == d.CustomerID {
				return false, nil
			}
			b.UserID, b.StripeCustomerID = userID, d.CustomerID
			return true, nil
		})
	case events.DepositSucceeded:
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
	if !ok {
		return nil
	}
	err = projections.Update(ctx, a.Docs, projections.BalanceCollection, userID, func(b *projections.Balance, _ bool) (bool, error) {
		if slices.Contains(b.Pending, entry.ID) {
			return false, nil
		}
		_, err := a.Docs.Get(ctx, projections.LedgerCollection, entry.ID)
		if err == nil {
			return false, nil // counted before
		}
		if !errors.Is(err, projections.ErrNotFound) {
			return false, err
		}
		b.UserID = userID
		b.Add(entry)
		b.Pending = append(b.Pending, entry.ID)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("balance of %s: %w", userID, err)
	}
	if err := projections.Put(ctx, a.Docs, projections.LedgerCollection, entry.ID, entry); err != nil {
		return fmt.Errorf("ledger entry %s: %w", entry.ID, err)
	}
	return projections.Update(ctx, a.Docs, projections.BalanceCollection, userID, func(b *projections.Balance, _ bool) (bool, error) {
		i := slices.Index(b.Pending, entry.ID)
		if i < 0 {
			return false, nil
		}
		b.Pending = slices.Delete(b.Pending, i, i+1)
		return true, nil
	})
}
