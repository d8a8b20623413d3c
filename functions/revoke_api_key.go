package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
)

type apiKeyRevokeRequest struct {
	KeyID string `json:"key_id" required:"true"`
}

type apiKeyRevokeResponse struct {
	Message      string `json:"message"`
	RevokedKeyID string `json:"revoked_key_id"`
}

// RevokeApiKey answers DELETE /users/me/api-keys: the key stops authenticating at once. Another
// user's key id is a 404, like an unknown one; revoking a revoked key answers 200 again.
func RevokeApiKey(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req apiKeyRevokeRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	_, err := changeUser(ctx, a, app.Caller(ctx).UserID, func(u events.User) ([]events.Envelope, error) {
		return events.RevokeAPIKey(u, newEventID(), req.KeyID, a.Clock.Now())
	})
	if err != nil {
		return userError(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, apiKeyRevokeResponse{Message: "API key revoked", RevokedKeyID: req.KeyID})
	return nil
}
