package functions

// The spec's User and ApiKey as the identity endpoints answer them, read from the user's
// document (or its stream, when the document lags).

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/httpapi"
)

// userResponse is the spec's User.
type userResponse struct {
	UserID          string           `json:"user_id"`
	Name            string           `json:"name"`
	Email           string           `json:"email"`
	GitHubID        *string          `json:"github_id"`
	GitHubLogin     *string          `json:"github_login"`
	APIKeys         []apiKeyResponse `json:"api_keys"`
	CreatedAt       time.Time        `json:"created_at"`
	LastLoginAt     *time.Time       `json:"last_login_at"`
	IsActive        bool             `json:"is_active"`
	TermsAcceptedAt *time.Time       `json:"terms_accepted_at"`
}

// apiKeyResponse is the spec's ApiKey. Key is the whole key only in the create response.
type apiKeyResponse struct {
	KeyID      string     `json:"key_id"`
	Key        string     `json:"key"`
	Name       *string    `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	IsActive   bool       `json:"is_active"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func keyResponse(k events.APIKey, key string, lastUsed *time.Time, now time.Time) apiKeyResponse {
	if key == "" {
		key = auth.MaskKey(k.Prefix, k.Last)
	}
	return apiKeyResponse{KeyID: k.KeyID, Key: key, Name: k.Name, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, IsActive: k.Active(now), LastUsedAt: lastUsed}
}

// currentUser reads the user's document, or folds the stream when the document is missing or
// older than atLeast (an inline projection that failed and awaits the bus).
func currentUser(ctx context.Context, a *app.App, userID string, atLeast int64) (projections.UserDoc, error) {
	var cache *app.IdentityCache
	if a.Identity != nil {
		cache = a.Identity.Cache
	}
	d, err := cache.User(ctx, a, userID)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return d, err
	}
	if err == nil && d.Version >= atLeast && d.Version > 0 {
		return d, nil
	}
	evs, lerr := a.Events.Load(ctx, events.UserStream(userID), 1)
	if lerr != nil {
		return d, lerr
	}
	u, ferr := events.FoldUser(evs)
	if ferr != nil {
		return d, ferr
	}
	if !u.Exists() {
		return d, httpapi.NotFound("user")
	}
	d.User = u
	return d, nil
}

// writeUser answers the spec's User for d, with the freshest last use of each key.
func writeUser(a *app.App, w http.ResponseWriter, d projections.UserDoc) {
	now := a.Clock.Now()
	id := a.Identity
	res := userResponse{UserID: d.ID, Name: d.Name, Email: d.Email, CreatedAt: d.CreatedAt,
		LastLoginAt: d.LastLoginAt, IsActive: d.Active, TermsAcceptedAt: d.TermsAcceptedAt,
		APIKeys: make([]apiKeyResponse, 0, len(d.APIKeys))}
	if d.GitHubID != "" {
		res.GitHubID, res.GitHubLogin = &d.GitHubID, &d.GitHubLogin
	}
	for _, k := range d.APIKeys {
		var last *time.Time
		if t, ok := d.KeyLastUsed[k.KeyID]; ok {
			last = &t
		}
		if id != nil {
			if t, ok := id.Usage.LastUsed(k.KeyID); ok && (last == nil || t.After(*last)) {
				last = &t
			}
		}
		res.APIKeys = append(res.APIKeys, keyResponse(k, "", last, now))
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}
