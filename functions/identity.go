package functions

// What the identity endpoints share: the identity services built once by Open (JWT issuing,
// the authenticator, the GitHub client, the token sealer, the last-used tracker), the user
// command loop, the sign-up credit and the User response.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/github"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

// identity is the App's Authenticator, and carries the rest of the identity services for the
// identity endpoints.
type identity struct {
	authn  *auth.Authenticator
	tokens *auth.Tokens
	sealer *auth.Sealer
	github *github.Client
	usage  *auth.Usage
	cache  *identityCache
}

// Authenticate implements Authenticator.
func (id *identity) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	p, err := id.authn.Authenticate(ctx, r)
	return Principal{UserID: p.UserID, KeyID: p.KeyID}, err
}

// lastUsedFlush is how often the last use of API keys is written out.
const lastUsedFlush = time.Minute

// openIdentity builds the identity services from the configuration; on the embedded default,
// keys that are not configured are generated once and kept in the data dir.
func (a *App) openIdentity() error {
	cfg := a.Config
	ringSpec, err := secretSetting(cfg.JWTKeys, cfg.Backend, cfg.DataDir, "jwt-keys", "CODESET_JWT_KEYS", func() (string, error) {
		k, err := auth.GenerateKey(ids.New()[:16], auth.AlgEdDSA)
		return k.String(), err
	})
	if err != nil {
		return err
	}
	ring, err := auth.ParseKeyRing(ringSpec)
	if err != nil {
		return err
	}
	sealSpec, err := secretSetting(cfg.GitHubTokenKey, cfg.Backend, cfg.DataDir, "github-token-key", "CODESET_GITHUB_TOKEN_KEY", func() (string, error) {
		k, err := auth.GenerateKey("seal", auth.AlgHS256)
		return strings.SplitN(k.String(), ":", 3)[2], err
	})
	if err != nil {
		return err
	}
	sealKey, err := auth.ParseSealerKey(sealSpec)
	if err != nil {
		return err
	}
	sealer, err := auth.NewSealer(sealKey)
	if err != nil {
		return err
	}
	tokens := &auth.Tokens{Ring: ring, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL, Now: a.Clock.Now}
	usage := &auth.Usage{Logger: a.Logger, Flush: func(ctx context.Context, uses []auth.Use) error {
		return projections.RecordKeyUses(ctx, a.Docs, uses)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { usage.Run(ctx, lastUsedFlush); close(done) }()
	a.closers = append(a.closers, func() error { cancel(); <-done; return nil })

	cache := newIdentityCache(cfg.AuthCacheTTL)
	a.Auth = &identity{
		authn:  &auth.Authenticator{Tokens: tokens, Lookup: cachedLookup{a: a, cache: cache}, Usage: usage, Now: a.Clock.Now},
		cache:  cache,
		tokens: tokens,
		sealer: sealer,
		github: &github.Client{OAuthURL: cfg.GitHubOAuthURL, APIURL: cfg.GitHubAPIURL,
			ClientID: cfg.GitHubClientID, ClientSecret: cfg.GitHubClientSecret},
		usage: usage,
	}
	return nil
}

// secretSetting returns the configured secret, or on the embedded default the one kept in
// <data dir>/<file> (created with gen, mode 0600, on first start).
func secretSetting(configured, backend, dataDir, file, env string, gen func() (string, error)) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if backend != "embedded" {
		return "", fmt.Errorf("%s is required with the %s backend", env, backend)
	}
	path := filepath.Join(dataDir, file)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	v, err := gen()
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", file, err)
	}
	if err := writeSecretFile(path, v+"\n"); err != nil {
		return "", err
	}
	// Another process may have won the race to create it: use whatever is on disk.
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeSecretFile writes content to path with mode 0600, atomically (temp file, then link), and
// leaves an existing file alone.
func writeSecretFile(path, content string) error {
	tmp := fmt.Sprintf("%s.%x.tmp", path, randomSuffix())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(path), err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("install %s: %w", filepath.Base(path), err)
	}
	return nil
}

func randomSuffix() []byte {
	b := make([]byte, 6)
	rand.Read(b)
	return b
}

// identityOf returns the identity services of a.
func identityOf(a *App) (*identity, error) {
	id, ok := a.Auth.(*identity)
	if !ok {
		return nil, errors.New("identity services are not configured")
	}
	return id, nil
}

// changeUser runs one command on a user: load the stream, fold, decide, record at the version
// read. A concurrent writer makes it start over (a few times). It returns the user after the
// new events.
func changeUser(ctx context.Context, a *App, userID string, decide func(u events.User) ([]events.Envelope, error)) (events.User, error) {
	stream := events.UserStream(userID)
	for attempt := 0; ; attempt++ {
		evs, err := a.Events.Load(ctx, stream, 1)
		if err != nil {
			return events.User{}, err
		}
		u, err := events.FoldUser(evs)
		if err != nil {
			return u, err
		}
		news, err := decide(u)
		if err != nil || len(news) == 0 {
			return u, err
		}
		stored, err := a.Record(ctx, stream, u.Version, news...)
		// The event store commits concurrent appends together, so every loser of a race learns it
		// in the same round: allow as many rounds as there are plausible contenders (a burst of
		// logins of one account), with a small random pause so they do not collide again.
		if errors.Is(err, events.ErrConcurrency) && attempt < 15 {
			time.Sleep(time.Duration(1+mrand.IntN(5*(attempt+1))) * time.Millisecond)
			continue
		}
		if err != nil {
			return u, err
		}
		for _, e := range stored {
			if err := u.Apply(e); err != nil {
				return u, err
			}
		}
		return u, nil
	}
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
func grantSignupCredit(ctx context.Context, a *App, u events.User) error {
	if a.Config.SignupCreditCents <= 0 {
		return nil
	}
	credit := events.SignupCreditID(u.ID)
	e, err := events.New(credit, u.ID, events.CreditGranted, u.CreatedAt, events.CreditGrantedData{
		CreditID: credit, AmountCents: a.Config.SignupCreditCents, Reason: "signup"})
	if err != nil {
		return err
	}
	if _, err := a.Record(ctx, events.AccountStream(u.ID), events.Any, e); err != nil {
		return fmt.Errorf("sign-up credit: %w", err)
	}
	return nil
}

// ensureSignupCredit grants the sign-up credit if the account has no event at all: it repairs
// a registration whose credit append failed, at the next login.
func ensureSignupCredit(ctx context.Context, a *App, u events.User) error {
	v, err := a.Events.Version(ctx, events.AccountStream(u.ID))
	if err != nil || v > 0 {
		return err
	}
	return grantSignupCredit(ctx, a, u)
}

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
func currentUser(ctx context.Context, a *App, userID string, atLeast int64) (projections.UserDoc, error) {
	var cache *identityCache
	if id, _ := identityOf(a); id != nil {
		cache = id.cache
	}
	d, err := cache.user(ctx, a, userID)
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
func writeUser(a *App, w http.ResponseWriter, d projections.UserDoc) {
	now := a.Clock.Now()
	id, _ := identityOf(a)
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
			if t, ok := id.usage.LastUsed(k.KeyID); ok && (last == nil || t.After(*last)) {
				last = &t
			}
		}
		res.APIKeys = append(res.APIKeys, keyResponse(k, "", last, now))
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// issueTokens issues the access and refresh tokens of a login.
func (id *identity) issueTokens(u events.User) (access, refresh string, expiresIn int64, err error) {
	access, ttl, err := id.tokens.Issue(u.ID, auth.UseAccess, u.TokenGeneration)
	if err != nil {
		return "", "", 0, err
	}
	refresh, _, err = id.tokens.Issue(u.ID, auth.UseRefresh, u.TokenGeneration)
	if err != nil {
		return "", "", 0, err
	}
	return access, refresh, int64(ttl / time.Second), nil
}

// projectionsLookup is the Authenticator's read side.
func projectionsLookup(a *App) projections.AuthLookup { return projections.AuthLookup{Docs: a.Docs} }

// newEventID is the id of a new event.
func newEventID() string { return ids.New() }
