package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
)

// AcceptTerms answers POST /users/me/accept-terms: records when the caller accepted the terms of
// service and answers the User.
func AcceptTerms(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	userID := app.Caller(ctx).UserID
	u, err := changeUser(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
		return events.AcceptTerms(u, newEventID(), a.Clock.Now())
	})
	if err != nil {
		return userError(err)
	}
	d, err := currentUser(ctx, a, userID, u.Version)
	if err != nil {
		return err
	}
	writeUser(a, w, d)
	return nil
}
