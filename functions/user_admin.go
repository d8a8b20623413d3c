package functions

import (
	"context"
	"fmt"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
)

// UserAdminActions are what an operator can do to a user (`codeset users ACTION USER_ID`):
// deactivate (tokens and API keys stop working at once), reactivate (API keys work again, JWTs
// issued before stay dead), and revoke-tokens (every JWT issued so far stops working: logout
// everywhere). Each returns whether it changed anything.
var UserAdminActions = map[string]func(ctx context.Context, a *app.App, userID string) (bool, error){
	"deactivate": func(ctx context.Context, a *app.App, userID string) (bool, error) {
		return adminChange(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
			return events.Deactivate(u, newEventID(), "operator", a.Clock.Now())
		})
	},
	"reactivate": func(ctx context.Context, a *app.App, userID string) (bool, error) {
		return adminChange(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
			return events.Reactivate(u, newEventID(), a.Clock.Now())
		})
	},
	"revoke-tokens": func(ctx context.Context, a *app.App, userID string) (bool, error) {
		return adminChange(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
			return events.RevokeTokens(u, newEventID(), a.Clock.Now())
		})
	},
}

func adminChange(ctx context.Context, a *app.App, userID string, decide func(events.User) ([]events.Envelope, error)) (bool, error) {
	changed := false
	_, err := changeUser(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
		evs, err := decide(u)
		changed = len(evs) > 0
		return evs, err
	})
	if err != nil {
		return false, fmt.Errorf("user %s: %w", userID, err)
	}
	return changed, nil
}
