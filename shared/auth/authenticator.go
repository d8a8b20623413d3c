package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/httpapi"
)

// ErrUnknown is what a Lookup returns for a key hash or user id it does not hold.
var ErrUnknown = errors.New("auth: unknown key or user")

// KeyRecord is the index entry of an API key, found by the key's hash.
type KeyRecord struct {
	KeyID      string
	UserID     string
	ExpiresAt  *time.Time
	Revoked    bool
	UserActive bool
}

// UserRecord is what authentication needs to know of a user.
type UserRecord struct {
	Active          bool
	TokenGeneration int
}

// Lookup is the read side the Authenticator consults: the API-key index and the users, both
// read by id (the key's hash, the user id), never by a scan.
type Lookup interface {
	KeyByHash(ctx context.Context, hash string) (KeyRecord, error)
	User(ctx context.Context, userID string) (UserRecord, error)
}

// Principal is an authenticated caller.
type Principal struct {
	UserID string
	KeyID  string // set when the caller used an API key
}

// Authenticator checks `Authorization: Bearer <JWT access token | API key>`.
type Authenticator struct {
	Tokens *Tokens
	Lookup Lookup
	Usage  *Usage // may be nil
	Now    func() time.Time
}

// Authenticate returns the caller, an *httpapi.Error 401 (with WWW-Authenticate: Bearer) for
// any missing, malformed, forged, expired or revoked credential, or a storage error. The 401's
// detail never echoes the credential.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	cred, err := bearer(r.Header)
	if err != nil {
		return Principal{}, err
	}
	if LooksLikeAPIKey(cred) {
		return a.apiKey(ctx, cred)
	}
	return a.accessToken(ctx, cred)
}

func bearer(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	if len(vals) == 0 {
		return "", httpapi.Unauthorized("not authenticated: send Authorization: Bearer <access token or API key>")
	}
	if len(vals) > 1 {
		return "", httpapi.Unauthorized("more than one Authorization header")
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", httpapi.Unauthorized("the Authorization header must be: Bearer <access token or API key>")
	}
	if cred == "" || len(cred) > maxTokenLen || strings.ContainsFunc(cred, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return "", httpapi.Unauthorized("malformed bearer credential")
	}
	return cred, nil
}

func (a *Authenticator) apiKey(ctx context.Context, key string) (Principal, error) {
	if !ValidAPIKey(key) {
		return Principal{}, httpapi.Unauthorized("invalid API key")
	}
	rec, err := a.Lookup.KeyByHash(ctx, HashAPIKey(key))
	if errors.Is(err, ErrUnknown) {
		return Principal{}, httpapi.Unauthorized("invalid API key")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("API key lookup: %w", err)
	}
	now := a.now()
	switch {
	case rec.Revoked:
		return Principal{}, httpapi.Unauthorized("API key revoked")
	case rec.ExpiresAt != nil && !now.Before(*rec.ExpiresAt):
		return Principal{}, httpapi.Unauthorized("API key expired")
	case !rec.UserActive:
		return Principal{}, httpapi.Unauthorized("user is deactivated")
	}
	if a.Usage != nil {
		a.Usage.Touch(rec.KeyID, rec.UserID, now)
	}
	return Principal{UserID: rec.UserID, KeyID: rec.KeyID}, nil
}

func (a *Authenticator) accessToken(ctx context.Context, token string) (Principal, error) {
	c, err := a.Tokens.Parse(token, UseAccess)
	if err != nil {
		return Principal{}, httpapi.Unauthorized("invalid or expired access token")
	}
	if err := a.CheckUser(ctx, c); err != nil {
		return Principal{}, err
	}
	return Principal{UserID: c.Subject}, nil
}

// CheckUser refuses the claims of a user who is unknown, deactivated, or whose tokens were
// revoked after these were issued. Refresh uses it too.
func (a *Authenticator) CheckUser(ctx context.Context, c *Claims) error {
	u, err := a.Lookup.User(ctx, c.Subject)
	if errors.Is(err, ErrUnknown) {
		return httpapi.Unauthorized("unknown user")
	}
	if err != nil {
		return fmt.Errorf("user lookup: %w", err)
	}
	if !u.Active {
		return httpapi.Unauthorized("user is deactivated")
	}
	if c.Generation != u.TokenGeneration {
		return httpapi.Unauthorized("token revoked")
	}
	return nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
