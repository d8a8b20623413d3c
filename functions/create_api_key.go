package functions

import (
	"context"
	"net/http"
	"unicode/utf8"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

type apiKeyCreateRequest struct {
	Name *string `json:"name"`
}

type apiKeyCreateResponse struct {
	APIKey apiKeyResponse `json:"api_key"`
}

// maxKeyName bounds a key's name, which every /users/me answer repeats.
const maxKeyName = 100

// CreateApiKey answers POST /users/me/api-keys: a new key, shown whole in this answer only.
func CreateApiKey(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req apiKeyCreateRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	if req.Name != nil && utf8.RuneCountInString(*req.Name) > maxKeyName {
		return httpapi.Invalid("string_too_long", "String should have at most 100 characters", "body", "name")
	}
	ctx := r.Context()
	key, err := auth.NewAPIKey()
	if err != nil {
		return err
	}
	created, err := createKey(ctx, a, app.Caller(ctx).UserID, key, req.Name)
	if err != nil {
		return userError(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, apiKeyCreateResponse{APIKey: keyResponse(created, key, nil, a.Clock.Now())})
	return nil
}

// createKey records key (only its hash and display characters) as a new key of userID.
func createKey(ctx context.Context, a *app.App, userID, key string, name *string) (events.APIKey, error) {
	now := a.Clock.Now()
	prefix, last := auth.KeyDisplay(key)
	data := events.APIKeyCreatedData{KeyID: ids.Prefixed("key"), Name: name, Hash: auth.HashAPIKey(key), Prefix: prefix, Last: last}
	if ttl := a.Config.APIKeyTTL; ttl > 0 {
		exp := now.Add(ttl).UTC()
		data.ExpiresAt = &exp
	}
	u, err := changeUser(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
		return events.CreateAPIKey(u, newEventID(), data, now)
	})
	if err != nil {
		return events.APIKey{}, err
	}
	return *u.Key(data.KeyID), nil
}
