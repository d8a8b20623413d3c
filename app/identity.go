package app

// The identity services built once by Open: JWT issuing and checking, the authenticator, the
// GitHub client, the token sealer, the last-used tracker and the identity cache.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/github"
	"github.com/codeset/codeset/shared/ids"
)

// Identity is the App's Authenticator, and carries the rest of the identity services for the
// identity endpoints.
type Identity struct {
	Authn  *auth.Authenticator
	Tokens *auth.Tokens
	Sealer *auth.Sealer
	GitHub *github.Client
	Usage  *auth.Usage
	Cache  *IdentityCache
}

// Authenticate implements Authenticator.
func (id *Identity) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	p, err := id.Authn.Authenticate(ctx, r)
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

	cache := NewIdentityCache(cfg.AuthCacheTTL)
	a.Identity = &Identity{
		Authn:  &auth.Authenticator{Tokens: tokens, Lookup: cachedLookup{a: a, cache: cache}, Usage: usage, Now: a.Clock.Now},
		Cache:  cache,
		Tokens: tokens,
		Sealer: sealer,
		GitHub: &github.Client{OAuthURL: cfg.GitHubOAuthURL, APIURL: cfg.GitHubAPIURL,
			ClientID: cfg.GitHubClientID, ClientSecret: cfg.GitHubClientSecret},
		Usage: usage,
	}
	a.Auth = a.Identity
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
	if err := WriteSecretFile(path, v+"\n"); err != nil {
		return "", err
	}
	// Another process may have won the race to create it: use whatever is on disk.
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteSecretFile writes content to path with mode 0600, atomically (temp file, then link), and
// leaves an existing file alone.
func WriteSecretFile(path, content string) error {
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

// AuthLookup is the Authenticator's read side, uncached.
func (a *App) AuthLookup() projections.AuthLookup { return projections.AuthLookup{Docs: a.Docs} }

// Identities returns a's identity services, or an error when Open did not build them.
func (a *App) Identities() (*Identity, error) {
	if a.Identity == nil {
		return nil, errors.New("identity services are not configured")
	}
	return a.Identity, nil
}
