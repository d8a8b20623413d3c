package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/functions"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
)

// creditsGrant gives a user free credit: the operator's way to fund accounts where Stripe is not
// configured. The grant is an event on the user's account stream, like the sign-up credit.
func creditsGrant(args []string) error {
	fs := flag.NewFlagSet("credits grant", flag.ContinueOnError)
	var cfg config.Config
	if err := cfg.Bind(fs); err != nil {
		return err
	}
	user := fs.String("user", "", "user id to credit (required)")
	cents := fs.Int64("cents", 0, "amount in cents (required, positive)")
	reason := fs.String("reason", "", "why, as the transaction's description (required)")
	id := fs.String("id", "", "credit id; repeating a grant with the same id credits once (default: a new id)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case *user == "":
		return errors.New("--user is required")
	case *cents <= 0:
		return errors.New("--cents must be a positive number of cents")
	case *reason == "":
		return errors.New("--reason is required")
	}
	if *id == "" {
		*id = ids.Prefixed("cr")
	}
	cfg.LogLevel = "error"
	ctx := context.Background()
	a, err := functions.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	_, _, err = app.Update(ctx, a, events.AccountStream(*user), events.AccountOf(*user), func(acct *events.Account) ([]events.Envelope, error) {
		return acct.GrantCredit(events.CreditGrantedData{CreditID: *id, AmountCents: *cents, Reason: *reason}, a.Clock.Now())
	})
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	b, err := projections.Get[projections.Balance](ctx, a.Docs, projections.BalanceCollection, *user)
	if err != nil {
		return fmt.Errorf("granted %d cents (credit %s), but reading the balance failed: %w", *cents, *id, err)
	}
	fmt.Fprintf(os.Stdout, "granted %d cents to %s (credit %s); balance now %d cents\n", *cents, *user, *id, b.BalanceCents)
	return nil
}
