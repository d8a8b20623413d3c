package functions

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/logging"
)

// syncBuffer collects log lines from concurrent requests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// idEnv is an embedded App in a temporary data dir, served over loopback, with a fake GitHub.
type idEnv struct {
	t    *testing.T
	a    *app.App
	url  string // where it is served
	stop func() // stops serving and closes the App
	gh   *fakeGitHub
	logs *syncBuffer
	cfg  config.Config
}

func newIDEnv(t *testing.T, tweak ...func(*config.Config)) *idEnv {
	t.Helper()
	gh := newFakeGitHub(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.GitHubOAuthURL, cfg.GitHubAPIURL = gh.URL, gh.URL
	cfg.GitHubClientID, cfg.GitHubClientSecret = gh.ClientID, gh.ClientSecret
	cfg.GitHubRedirectURIs = []string{gh.Redirect}
	for _, f := range tweak {
		f(&cfg)
	}
	return openIDEnv(t, cfg, gh)
}

func openIDEnv(t *testing.T, cfg config.Config, gh *fakeGitHub) *idEnv {
	t.Helper()
	logs := &syncBuffer{}
	a := openApp(t, appSpec{DataDir: cfg.DataDir, Tune: func(c *config.Config) { *c = cfg }, RealAuth: true,
		Logger: logging.New(logs, -8), // debug and up: everything
		Serve:  true})
	return &idEnv{t: t, a: a.App, url: a.URL, stop: a.stop, gh: gh, logs: logs, cfg: cfg}
}

// call sends a request with the bearer credential (none when cred is "") and decodes the JSON
// answer into out (when not nil).
func (e *idEnv) call(method, path, cred string, body any, out any) *http.Response {
	e.t.Helper()
	resp, raw := callAPI(e.t, e.url, cred, method, path, body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, redact(string(raw)), err)
		}
	}
	return resp
}

func (e *idEnv) want(resp *http.Response, status int) {
	e.t.Helper()
	if resp.StatusCode != status {
		raw, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, redact(string(raw)))
	}
}

type loginResp struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	IsNewUser    bool   `json:"is_new_user"`
}

func (e *idEnv) login(account int64) loginResp {
	e.t.Helper()
	var out loginResp
	e.want(e.call("POST", "/auth/github", "", map[string]any{"code": e.gh.code(account), "state": "s", "redirect_uri": e.gh.Redirect}, &out), 200)
	return out
}

// bootstrapKey runs the bootstrap task and returns the key and what it printed.
func (e *idEnv) bootstrapKey() (string, string) {
	e.t.Helper()
	var out bytes.Buffer
	e.a.Console = &out
	defer func() { e.a.Console = io.Discard }()
	if err := bootstrap(context.Background(), e.a); err != nil {
		e.t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(e.cfg.DataDir, BootstrapKeyFile))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(raw)), out.String()
}

// snapshot is every stored event and every identity document: what a refused request must not
// change.
func (e *idEnv) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	err := e.a.Events.Scan(context.Background(), "", func(ev events.Envelope) error {
		b.WriteString(ev.Stream + "@" + ev.ID + string(ev.Data) + "\n")
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, coll := range []string{projections.UsersCollection, projections.APIKeysCollection} {
		p, err := e.a.Docs.Query(context.Background(), coll, projections.Query{})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, d := range p.Docs {
			b.Write(d)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (e *idEnv) accountEvents(userID string) []events.Envelope {
	e.t.Helper()
	evs, err := e.a.Events.Load(context.Background(), events.AccountStream(userID), 1)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

type userResp struct {
	UserID          string     `json:"user_id"`
	Name            string     `json:"name"`
	Email           string     `json:"email"`
	GitHubID        *string    `json:"github_id"`
	GitHubLogin     *string    `json:"github_login"`
	CreatedAt       time.Time  `json:"created_at"`
	LastLoginAt     *time.Time `json:"last_login_at"`
	IsActive        bool       `json:"is_active"`
	TermsAcceptedAt *time.Time `json:"terms_accepted_at"`
	APIKeys         []struct {
		KeyID      string     `json:"key_id"`
		Key        string     `json:"key"`
		Name       *string    `json:"name"`
		IsActive   bool       `json:"is_active"`
		LastUsedAt *time.Time `json:"last_used_at"`
	} `json:"api_keys"`
}

// The answers that carry keys or tokens print them masked (%v, %+v), so that a failure message
// never shows one.
func (l loginResp) String() string { type plain loginResp; return redact(fmt.Sprintf("%+v", plain(l))) }
func (u userResp) String() string  { type plain userResp; return redact(fmt.Sprintf("%+v", plain(u))) }
func (k keyResp) String() string   { type plain keyResp; return redact(fmt.Sprintf("%+v", plain(k))) }

type keyResp struct {
	APIKey struct {
		KeyID     string     `json:"key_id"`
		Key       string     `json:"key"`
		Name      *string    `json:"name"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at"`
		IsActive  bool       `json:"is_active"`
	} `json:"api_key"`
}

// TestIdentityEndToEnd drives the seven operations over HTTP against the fake GitHub.
func TestIdentityEndToEnd(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	e.gh.addAccount(42, fakeAcc{Login: "alice", Name: "Alice Liddell", Repos: 250})
	e.gh.addAccount(43, fakeAcc{Login: "bob", Repos: 0})

	// Registration.
	first := e.login(42)
	if !first.IsNewUser || first.UserID == "" || first.TokenType != "Bearer" || first.ExpiresIn != int64(e.cfg.AccessTokenTTL.Seconds()) {
		t.Fatalf("first login: %+v", first)
	}
	var me userResp
	e.want(e.call("GET", "/users/me", first.AccessToken, nil, &me), 200)
	if me.UserID != first.UserID || me.Name != "Alice Liddell" || me.Email != "alice@example.test" ||
		me.GitHubID == nil || *me.GitHubID != "42" || *me.GitHubLogin != "alice" || !me.IsActive ||
		me.LastLoginAt == nil || me.TermsAcceptedAt != nil || len(me.APIKeys) != 0 {
		t.Fatalf("/users/me after registration: %+v", me)
	}
	credits := e.accountEvents(first.UserID)
	if len(credits) != 1 || credits[0].Type != events.CreditGranted {
		t.Fatalf("sign-up credit: %+v", credits)
	}
	var grant events.CreditGrantedData
	credits[0].Decode(&grant)
	if grant.AmountCents != 500 || grant.Reason != "signup" || grant.CreditID == "" {
		t.Fatalf("sign-up credit data: %+v", grant)
	}

	// Login of the same account: same user, no second credit.
	second := e.login(42)
	if second.IsNewUser || second.UserID != first.UserID {
		t.Fatalf("second login: %+v", second)
	}
	if n := len(e.accountEvents(first.UserID)); n != 1 {
		t.Fatalf("a login credited again: %d account events", n)
	}
	// Another account is another user, whose key ids are not Alice's.
	bob := e.login(43)
	if !bob.IsNewUser || bob.UserID == first.UserID {
		t.Fatalf("bob: %+v", bob)
	}
	var bobMe userResp
	e.want(e.call("GET", "/users/me", bob.AccessToken, nil, &bobMe), 200)
	if bobMe.Name != "bob" {
		t.Fatalf("a user without a name is named by login: %+v", bobMe)
	}

	// Refresh.
	var refreshed struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	e.want(e.call("POST", "/auth/refresh", "", map[string]string{"refresh_token": first.RefreshToken}, &refreshed), 200)
	if refreshed.AccessToken == "" || refreshed.TokenType != "Bearer" || refreshed.ExpiresIn <= 0 {
		t.Fatalf("refresh: %+v", refreshed)
	}
	e.want(e.call("GET", "/users/me", refreshed.AccessToken, nil, nil), 200)

	// Repositories: every page.
	var repos struct {
		Repos []struct {
			FullName string `json:"full_name"`
			Private  bool   `json:"private"`
			HTMLURL  string `json:"html_url"`
		} `json:"repos"`
	}
	e.want(e.call("GET", "/repos", first.AccessToken, nil, &repos), 200)
	if len(repos.Repos) != 250 || repos.Repos[0].FullName != "alice/repo-000" || !repos.Repos[0].Private ||
		repos.Repos[249].FullName != "alice/repo-249" || repos.Repos[249].HTMLURL == "" {
		t.Fatalf("repos: %d, first %+v", len(repos.Repos), repos.Repos[:1])
	}
	var none struct {
		Repos []any `json:"repos"`
	}
	e.want(e.call("GET", "/repos", bob.AccessToken, nil, &none), 200)
	if none.Repos == nil || len(none.Repos) != 0 {
		t.Fatalf("no repositories must be an empty list: %+v", none)
	}
	// A token GitHub no longer accepts is a clear 4xx, and the next login fixes it.
	e.gh.revoke(42)
	e.want(e.call("GET", "/repos", first.AccessToken, nil, nil), 400)
	e.login(42)
	e.want(e.call("GET", "/repos", first.AccessToken, nil, nil), 200)

	// Terms.
	var accepted userResp
	e.want(e.call("POST", "/users/me/accept-terms", first.AccessToken, nil, &accepted), 200)
	if accepted.TermsAcceptedAt == nil || accepted.UserID != first.UserID {
		t.Fatalf("accept-terms: %+v", accepted)
	}

	// API keys: shown once, masked afterwards, usable at once, revocable.
	var created keyResp
	e.want(e.call("POST", "/users/me/api-keys", first.AccessToken, map[string]any{"name": "laptop"}, &created), 200)
	k := created.APIKey
	if !auth.ValidAPIKey(k.Key) || k.KeyID == "" || k.Name == nil || *k.Name != "laptop" || !k.IsActive || k.ExpiresAt != nil {
		t.Fatalf("created key: %v", created)
	}
	var unnamed keyResp
	e.want(e.call("POST", "/users/me/api-keys", k.Key, map[string]any{}, &unnamed), 200)
	if unnamed.APIKey.Name != nil {
		t.Fatalf("unnamed key: %+v", unnamed)
	}
	resp := e.call("GET", "/users/me", k.Key, nil, &me)
	e.want(resp, 200)
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), k.Key) || strings.Contains(string(body), unnamed.APIKey.Key) {
		t.Fatal("/users/me shows a whole key")
	}
	if len(me.APIKeys) != 2 || me.APIKeys[0].KeyID != k.KeyID || !strings.HasPrefix(me.APIKeys[0].Key, k.Key[:7]) ||
		!strings.HasSuffix(me.APIKeys[0].Key, k.Key[len(k.Key)-4:]) || me.APIKeys[0].LastUsedAt == nil {
		t.Fatalf("listed keys: %+v", me.APIKeys)
	}
	// 422s for bad bodies.
	e.want(e.call("POST", "/users/me/api-keys", k.Key, map[string]any{"name": strings.Repeat("n", 101)}, nil), 422)
	e.want(e.call("POST", "/users/me/api-keys", k.Key, map[string]any{"name": 7}, nil), 422)
	e.want(e.call("DELETE", "/users/me/api-keys", k.Key, map[string]any{}, nil), 422)

	// Another user's key id is a 404, and changes nothing.
	before := e.snapshot()
	e.want(e.call("DELETE", "/users/me/api-keys", bob.AccessToken, map[string]string{"key_id": k.KeyID}, nil), 404)
	e.want(e.call("DELETE", "/users/me/api-keys", bob.AccessToken, map[string]string{"key_id": "key_unknown"}, nil), 404)
	if e.snapshot() != before {
		t.Fatal("a refused revoke changed something")
	}
	var revoked struct {
		Message      string `json:"message"`
		RevokedKeyID string `json:"revoked_key_id"`
	}
	e.want(e.call("DELETE", "/users/me/api-keys", first.AccessToken, map[string]string{"key_id": k.KeyID}, &revoked), 200)
	if revoked.RevokedKeyID != k.KeyID || revoked.Message == "" {
		t.Fatalf("revoke: %+v", revoked)
	}
	e.want(e.call("GET", "/users/me", k.Key, nil, nil), 401)
	e.want(e.call("GET", "/users/me", unnamed.APIKey.Key, nil, nil), 200)
	// Revoking again is harmless.
	e.want(e.call("DELETE", "/users/me/api-keys", first.AccessToken, map[string]string{"key_id": k.KeyID}, nil), 200)
	e.want(e.call("GET", "/users/me", first.AccessToken, nil, &me), 200)
	if me.APIKeys[0].IsActive || !me.APIKeys[1].IsActive {
		t.Fatalf("key states after revoke: %+v", me.APIKeys)
	}

	assertNoSecrets(t, e, []string{k.Key, unnamed.APIKey.Key, first.AccessToken, first.RefreshToken, refreshed.AccessToken, e.gh.ClientSecret})
}

// assertNoSecrets reads the logs: no key, token, GitHub token or code may appear.
func assertNoSecrets(t *testing.T, e *idEnv, secrets []string) {
	t.Helper()
	logs := e.logs.String()
	if !strings.Contains(logs, `"message":"request"`) {
		t.Fatal("the logs were not captured")
	}
	e.gh.mu.Lock()
	secrets = append(secrets, e.gh.Issued...)
	e.gh.mu.Unlock()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		// A token's signature, or any long piece of a key, is as bad as the whole.
		if strings.Contains(logs, s) || len(s) > 40 && strings.Contains(logs, s[len(s)-20:]) {
			t.Fatalf("a secret (%.6s…) is in the logs", s)
		}
	}
	if strings.Contains(logs, "code-") {
		t.Fatal("an authorization code is in the logs")
	}
}

func TestGitHubLoginErrors(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	e.gh.addAccount(7, fakeAcc{Login: "carol"})
	before := e.snapshot()
	cases := []struct {
		name   string
		body   any
		status int
	}{
		{"unknown code", map[string]any{"code": "nope"}, 400},
		{"no code", map[string]any{"state": "x"}, 422},
		{"empty code", map[string]any{"code": ""}, 422},
		{"code not a string", map[string]any{"code": 5}, 422},
		{"disallowed redirect_uri", map[string]any{"code": e.gh.code(7), "redirect_uri": "https://evil.test/cb"}, 400},
		{"not JSON", "{", 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.want(e.call("POST", "/auth/github", "", c.body, nil), c.status)
		})
	}
	// A used code does not work twice.
	code := e.gh.code(7)
	e.want(e.call("POST", "/auth/github", "", map[string]any{"code": code}, nil), 200)
	after := e.snapshot()
	e.want(e.call("POST", "/auth/github", "", map[string]any{"code": code}, nil), 400)
	e.gh.mu.Lock()
	e.gh.Fail = true
	e.gh.mu.Unlock()
	e.want(e.call("POST", "/auth/github", "", map[string]any{"code": e.gh.code(7)}, nil), 400)
	if e.snapshot() != after || before == after {
		t.Fatal("failed logins changed something")
	}

	wrongSecret := newIDEnv(t, func(c *config.Config) { c.GitHubClientSecret = "wrong" })
	wrongSecret.gh.addAccount(7, fakeAcc{Login: "carol"})
	wrongSecret.want(wrongSecret.call("POST", "/auth/github", "", map[string]any{"code": wrongSecret.gh.code(7)}, nil), 400)
	off := newIDEnv(t, func(c *config.Config) { c.GitHubClientID = "" })
	off.want(off.call("POST", "/auth/github", "", map[string]any{"code": "x"}, nil), 400)
}

func TestListReposWithoutGitHubToken(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	key, _ := e.bootstrapKey()
	resp := e.call("GET", "/repos", key, nil, nil)
	e.want(resp, 400)
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "GitHub") {
		t.Fatalf("unclear detail: %s", body)
	}
}

func TestConcurrentFirstLogins(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	e.gh.addAccount(9, fakeAcc{Login: "dave"})
	const n = 6
	codes := make([]string, n)
	for i := range codes {
		codes[i] = e.gh.code(9)
	}
	results := make([]loginResp, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out loginResp
			resp := e.call("POST", "/auth/github", "", map[string]any{"code": codes[i]}, &out)
			if resp.StatusCode != 200 {
				t.Errorf("login %d: %d", i, resp.StatusCode)
			}
			results[i] = out
		}()
	}
	wg.Wait()
	news := 0
	for _, r := range results {
		if r.IsNewUser {
			news++
		}
		if r.UserID != results[0].UserID {
			t.Fatal("one account, two users")
		}
	}
	if news != 1 {
		t.Fatalf("%d logins saw a new user", news)
	}
	if got := len(e.accountEvents(results[0].UserID)); got != 1 {
		t.Fatalf("%d sign-up credits", got)
	}
}

// TestAuthRefused is the security list of the issue, over HTTP: each one is a 401 with a Bearer
// challenge and changes nothing.
func TestAuthRefused(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	e.gh.addAccount(1, fakeAcc{Login: "erin"})
	l := e.login(1)
	var created keyResp
	e.want(e.call("POST", "/users/me/api-keys", l.AccessToken, map[string]any{"name": "gone"}, &created), 200)
	e.want(e.call("DELETE", "/users/me/api-keys", l.AccessToken, map[string]string{"key_id": created.APIKey.KeyID}, nil), 200)

	ringSpec, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "jwt-keys"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(string(ringSpec)), ":")
	kid := parts[0]
	seed, _ := base64.RawURLEncoding.DecodeString(parts[2])
	priv := ed25519.NewKeyFromSeed(seed)
	now := time.Now()
	claims := func(over jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"iss": e.cfg.JWTIssuer, "aud": []string{e.cfg.JWTAudience}, "sub": l.UserID,
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "token_use": "access", "gen": 0}
		for k, v := range over {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	forge := func(alg jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(alg, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	control := forge(jwt.SigningMethodEdDSA, priv, kid, claims(nil))
	e.want(e.call("GET", "/users/me", control, nil, nil), 200) // the forger holds the real key

	b64 := func(v any) string { raw, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(raw) }
	sig := strings.Split(control, ".")
	flipped := []byte(sig[2])
	flipped[5] ^= 1
	if flipped[5] == '.' {
		flipped[5] = 'A'
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	bearer := map[string]string{
		"alg none":                       b64(map[string]string{"alg": "none", "typ": "JWT", "kid": kid}) + "." + b64(claims(nil)) + ".",
		"HMAC keyed with the public key": forge(jwt.SigningMethodHS256, []byte(priv.Public().(ed25519.PublicKey)), kid, claims(nil)),
		"tampered signature":             sig[0] + "." + sig[1] + "." + string(flipped),
		"tampered subject":               sig[0] + "." + b64(claims(jwt.MapClaims{"sub": "user_other"})) + "." + sig[2],
		"expired":                        forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})),
		"no exp":                         forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"exp": nil})),
		"wrong issuer":                   forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"iss": "evil"})),
		"wrong audience":                 forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"aud": "other"})),
		"refresh token as access":        l.RefreshToken,
		"unknown kid":                    forge(jwt.SigningMethodEdDSA, otherPriv, "unknown-kid", claims(nil)),
		"right kid, other key":           forge(jwt.SigningMethodEdDSA, otherPriv, kid, claims(nil)),
		"revoked API key":                created.APIKey.Key,
		"malformed API key":              "cs_" + strings.Repeat("A", 40),
		"API key, bad checksum":          created.APIKey.Key[:len(created.APIKey.Key)-1] + "0",
		"unknown API key":                mustKey(t),
		"garbage":                        "garbage",
		"user id":                        l.UserID,
	}
	headers := map[string]string{
		"no scheme":    l.AccessToken,
		"basic scheme": "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")),
		"empty bearer": "Bearer",
		"bearer space": "Bearer ",
		"two tokens":   "Bearer " + l.AccessToken + " " + l.AccessToken,
	}
	before := e.snapshot()
	check := func(t *testing.T, req *http.Request) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Every protected identity operation refuses them, including the writes.
	ops := []struct{ method, path, body string }{
		{"GET", "/users/me", ""},
		{"POST", "/users/me/api-keys", `{"name":"x"}`},
		{"DELETE", "/users/me/api-keys", `{"key_id":"` + created.APIKey.KeyID + `"}`},
		{"POST", "/users/me/accept-terms", ""},
		{"GET", "/repos", ""},
	}
	for name, tok := range bearer {
		t.Run(name, func(t *testing.T) {
			for _, op := range ops {
				req, _ := http.NewRequest(op.method, e.url+app.Prefix+op.path, strings.NewReader(op.body))
				req.Header.Set("Authorization", "Bearer "+tok)
				check(t, req)
			}
		})
	}
	for name, h := range headers {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+app.Prefix+"/users/me/api-keys", strings.NewReader(`{}`))
			req.Header.Set("Authorization", h)
			check(t, req)
		})
	}
	t.Run("no header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.url+app.Prefix+"/users/me", nil)
		check(t, req)
	})
	// Refresh: an access token, a forged or expired refresh token.
	for name, tok := range map[string]string{
		"access token used to refresh": l.AccessToken,
		"alg none refresh":             bearer["alg none"],
		"expired refresh":              forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"token_use": "refresh", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})),
		"refresh for another audience": forge(jwt.SigningMethodEdDSA, priv, kid, claims(jwt.MapClaims{"token_use": "refresh", "aud": "x"})),
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+app.Prefix+"/auth/refresh", strings.NewReader(`{"refresh_token":"`+tok+`"}`))
			check(t, req)
		})
	}
	if e.snapshot() != before {
		t.Fatal("a refused request changed something")
	}

	// Revoked tokens and a deactivated user.
	u, err := changeUser(context.Background(), e.a, l.UserID, func(u events.User) ([]events.Envelope, error) {
		return events.RevokeTokens(u, newEventID(), time.Now())
	})
	if err != nil || u.TokenGeneration != 1 {
		t.Fatalf("revoke tokens: %v %v", u.TokenGeneration, err)
	}
	before = e.snapshot()
	e.want(e.call("GET", "/users/me", l.AccessToken, nil, nil), 401)
	e.want(e.call("POST", "/auth/refresh", "", map[string]string{"refresh_token": l.RefreshToken}, nil), 401)
	l2 := e.login(1) // a new login works again
	e.want(e.call("GET", "/users/me", l2.AccessToken, nil, nil), 200)
	var fresh keyResp
	e.want(e.call("POST", "/users/me/api-keys", l2.AccessToken, map[string]any{}, &fresh), 200)
	if _, err := changeUser(context.Background(), e.a, l.UserID, func(u events.User) ([]events.Envelope, error) {
		return events.Deactivate(u, newEventID(), "test", time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	before = e.snapshot()
	e.want(e.call("POST", "/auth/refresh", "", map[string]string{"refresh_token": l2.RefreshToken}, nil), 401)
	e.want(e.call("GET", "/users/me", l2.AccessToken, nil, nil), 401)
	e.want(e.call("GET", "/users/me", fresh.APIKey.Key, nil, nil), 401)
	e.want(e.call("POST", "/auth/github", "", map[string]any{"code": e.gh.code(1)}, nil), 401)
	if e.snapshot() != before {
		t.Fatal("a refused request of a deactivated user changed something")
	}
	assertNoSecrets(t, e, append([]string{l.AccessToken, l.RefreshToken, l2.AccessToken, l2.RefreshToken, created.APIKey.Key, fresh.APIKey.Key, control}, values(bearer)...))
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func mustKey(t *testing.T) string {
	k, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	key, printed := e.bootstrapKey()
	if !auth.ValidAPIKey(key) || !strings.Contains(printed, key) {
		t.Fatalf("bootstrap key valid %v, printed %v", auth.ValidAPIKey(key), strings.Contains(printed, key))
	}
	st, err := os.Stat(filepath.Join(e.cfg.DataDir, BootstrapKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	var me userResp
	e.want(e.call("GET", "/users/me", key, nil, &me), 200)
	if me.UserID != events.LocalUserID() || me.GitHubID != nil || me.Email == "" || len(me.APIKeys) != 1 {
		t.Fatalf("local user: %+v", me)
	}
	if evs := e.accountEvents(me.UserID); len(evs) != 1 || evs[0].Type != events.CreditGranted {
		t.Fatalf("the local user's sign-up credit: %+v", evs)
	}
	// Later starts reuse the key and print nothing.
	again, printed := e.bootstrapKey()
	if again != key || printed != "" {
		t.Fatalf("second start: key changed %v, printed %q", again != key, redact(printed))
	}
	// A restart on the same data dir: same key, and tokens signed before still verify.
	e.gh.addAccount(5, fakeAcc{Login: "frank"})
	l := e.login(5)
	e.stop()
	e2 := openIDEnv(t, e.cfg, e.gh)
	if k, printed := e2.bootstrapKey(); k != key || printed != "" {
		t.Fatal("a restart made a new bootstrap key")
	}
	e2.want(e2.call("GET", "/users/me", l.AccessToken, nil, nil), 200)
	e2.want(e2.call("GET", "/users/me", key, nil, nil), 200)
	// A revoked bootstrap key is replaced at the next start.
	e2.want(e2.call("DELETE", "/users/me/api-keys", key, map[string]string{"key_id": me.APIKeys[0].KeyID}, nil), 200)
	fresh, printed := e2.bootstrapKey()
	if fresh == key || !strings.Contains(printed, fresh) {
		t.Fatal("a revoked bootstrap key was not replaced")
	}
	e2.want(e2.call("GET", "/users/me", fresh, nil, nil), 200)
	if evs := e2.accountEvents(me.UserID); len(evs) != 1 {
		t.Fatalf("a new bootstrap key credited again: %d", len(evs))
	}
	if strings.Contains(e.logs.String()+e2.logs.String(), key[8:30]) || strings.Contains(e2.logs.String(), fresh[8:30]) {
		t.Fatal("the bootstrap key is in the logs")
	}
}

func TestAPIKeyExpiryAndLastUsed(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t, func(c *config.Config) { c.APIKeyTTL = time.Hour })
	key, _ := e.bootstrapKey()
	var me userResp
	e.want(e.call("GET", "/users/me", key, nil, &me), 200)
	used := me.APIKeys[0].LastUsedAt
	if used == nil {
		t.Fatal("no last_used_at after a use")
	}
	id, _ := e.a.Identities()
	if err := id.Usage.FlushNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, err := projections.Get[projections.UserDoc](context.Background(), e.a.Docs, projections.UsersCollection, me.UserID)
	if err != nil || d.KeyLastUsed[me.APIKeys[0].KeyID].IsZero() {
		t.Fatalf("last use not flushed: %+v %v", d.KeyLastUsed, err)
	}
	// The key expires an hour after its creation.
	e.a.Clock = fakeClockAt(time.Now().Add(61 * time.Minute))
	id.Authn.Now = e.a.Clock.Now
	e.want(e.call("GET", "/users/me", key, nil, nil), 401)
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func fakeClockAt(t time.Time) fixedClock { return fixedClock(t.UTC()) }

func TestUserAdminActions(t *testing.T) {
	t.Parallel()
	e := newIDEnv(t)
	key, _ := e.bootstrapKey()
	user := events.LocalUserID()
	ctx := context.Background()
	for _, step := range []struct {
		action  string
		changed bool
		status  int
	}{
		{"deactivate", true, 401},
		{"deactivate", false, 401},
		{"reactivate", true, 200},
		{"reactivate", false, 200},
		{"revoke-tokens", true, 200}, // API keys are not tokens
	} {
		changed, err := UserAdminActions[step.action](ctx, e.a, user)
		if err != nil || changed != step.changed {
			t.Fatalf("%s: changed %v, %v", step.action, changed, err)
		}
		e.want(e.call("GET", "/users/me", key, nil, nil), step.status)
	}
	if _, err := UserAdminActions["deactivate"](ctx, e.a, "user_nobody"); !errors.Is(err, events.ErrUserNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}
