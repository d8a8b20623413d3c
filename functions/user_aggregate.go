package functions

// The user aggregate as the identity endpoints, the bootstrap and the operator commands use it:
// changing a user through the write path, its domain errors as HTTP errors, and the sign-up
// credit that comes with a registration.

import (
	"context"
	"errors"
	"fmt"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

// changeUser runs one command on a user through the write path and returns the user after the
// new events.
func changeUser(ctx context.Context, a *app.App, userID string, decide func(u events.User) ([]events.Envelope, error)) (events.User, error) {
	u, _, err := app.Update(ctx, a, events.UserStream(userID), events.UserOf, func(u *events.User) ([]events.Envelope, error) {
		return decide(*u)
	})
	return *u, err
}

// userError maps the user aggregate's domain errors to HTTP errors.
func userError(err error) error {
	switch {
	case errors.Is(err, events.ErrUserNotFound):
		return httpapi.NotFound("user")
	case errors.Is(err, events.ErrUserInactive):
		return httpapi.Unauthorized("user is deactivated")
	case errors.Is(err, events.ErrAPIKeyNotFound):
		return httpapi.NotFound("API key")
	case errors.Is(err, events.ErrTooManyAPIKeys):
		return httpapi.Conflict(err.Error())
	}
	return err
}

// grantSignupCredit appends the sign-up credit of u to its account. The event's id and time are
// derived from the user, so a retry is recognised by the store and never credits twice.
func grantSignupCredit(ctx context.Context, a *app.App, u events.User) error {
	if a.Config.SignupCreditCents <= 0 {
		return nil
	}
	credit := events.SignupCreditID(u.ID)
	e, err := events.New(credit, u.ID, events.CreditGranted, u.CreatedAt, events.CreditGrantedData{
		CreditID: credit, AmountCents: a.Config.SignupCreditCents, Reason: "signup"})
	if err != nil {
		return err
	}
	_, err = updateAccount(ctx, a, u.ID, func(acct *events.Account) ([]events.Envelope, error) {
		if acct.Grants[credit] {
			return nil, nil
		}
		return []events.Envelope{e}, nil
	})
	if err != nil {
		return fmt.Errorf("sign-up credit: %w", err)
	}
	return nil
}

// ensureSignupCredit grants the sign-up credit if the account has no event at all: it repairs
// a registration whose credit append failed, at the next login.
func ensureSignupCredit(ctx context.Context, a *app.App, u events.User) error {
	v, err := a.Events.Version(ctx, events.AccountStream(u.ID))
	if err != nil || v > 0 {
		return err
	}
	return grantSignupCredit(ctx, a, u)
}

// newEventID is the id of a new event.
func newEventID() string { return ids.New() }
