// Package github talks to GitHub for the login: the OAuth code exchange, the user and their
// emails, and the repositories the user can reach (every page). Base URLs come from
// configuration, so tests point it at a fake server.
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors the caller maps to status codes. Messages never contain the code or a token.
var (
	// ErrBadCode: GitHub refused the authorization code (wrong, expired or already used) or the
	// redirect_uri that came with it.
	ErrBadCode = errors.New("GitHub refused the authorization code")
	// ErrBadToken: GitHub refused the stored OAuth token (revoked, expired).
	ErrBadToken = errors.New("GitHub refused the OAuth token")
	// ErrMisconfigured: GitHub refused this server's client id or secret.
	ErrMisconfigured = errors.New("GitHub refused this server's OAuth client credentials")
	// ErrUnavailable: GitHub could not be reached or answered with a server error.
	ErrUnavailable = errors.New("GitHub is unavailable")
	// ErrRepoNotFound: GitHub says the repository does not exist or the token cannot read it
	// (GitHub answers 404 for both, so as not to reveal private repositories).
	ErrRepoNotFound = errors.New("GitHub: repository not found or not readable with this token")
	// ErrRepoNeedsApp: GitHub refuses this app's token for the repository (403): its
	// organisation restricts third-party access until the app is installed or approved there.
	ErrRepoNeedsApp = errors.New("GitHub: the repository's organisation has not granted this app access")
)

// Client is a GitHub OAuth app's client.
type Client struct {
	OAuthURL     string // e.g. https://github.com
	APIURL       string // e.g. https://api.github.com
	ClientID     string
	ClientSecret string
	HTTP         *http.Client // nil: a client with a 15 s timeout
	// MaxPages bounds the repository pages followed (100 repositories each); 0 means 100.
	MaxPages int
}

// User is the GitHub account.
type User struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Email is one of the account's email addresses.
type Email struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// Repo is a repository the user can reach.
type Repo struct {
	FullName string `json:"full_name"`
	Private  bool   `json:"private"`
	HTMLURL  string `json:"html_url"`
}

var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// Exchange trades an authorization code for an OAuth token. GitHub answers 200 even for a bad
// code, with an "error" field.
func (c *Client) Exchange(ctx context.Context, code, redirectURI string) (string, error) {
	form := url.Values{"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "code": {code}}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.OAuthURL, "/")+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("GitHub token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: token exchange: %s", ErrUnavailable, redact(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%w: token exchange: reading the answer", ErrUnavailable)
	}
	if resp.StatusCode >= 500 {
		return "", fmt.Errorf("%w: token exchange answered %d", ErrUnavailable, resp.StatusCode)
	}
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("%w: token exchange answered %d with something other than JSON", ErrUnavailable, resp.StatusCode)
	}
	switch {
	case out.Error == "incorrect_client_credentials" || resp.StatusCode == http.StatusUnauthorized:
		return "", ErrMisconfigured
	case out.Error == "redirect_uri_mismatch":
		return "", fmt.Errorf("%w: the redirect_uri does not match the one of the authorize step", ErrBadCode)
	case out.Error != "":
		return "", fmt.Errorf("%w (%s)", ErrBadCode, safe(out.Error))
	case out.AccessToken == "":
		return "", fmt.Errorf("%w: the answer held no token", ErrBadCode)
	}
	return out.AccessToken, nil
}

// User reads the account behind token.
func (c *Client) User(ctx context.Context, token string) (User, error) {
	var u User
	_, err := c.get(ctx, token, c.api("/user"), &u)
	if err == nil && u.ID == 0 {
		err = fmt.Errorf("%w: /user answered without an id", ErrUnavailable)
	}
	return u, err
}

// PrimaryEmail returns the primary verified email of the account, falling back to its public
// email and then to GitHub's no-reply address, so a user always has one.
func (c *Client) PrimaryEmail(ctx context.Context, token string, u User) (string, error) {
	var emails []Email
	_, err := c.get(ctx, token, c.api("/user/emails"), &emails)
	var se *statusError
	if err != nil && !(errors.As(err, &se) && (se.status == http.StatusNotFound || se.status == http.StatusForbidden)) {
		return "", err
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			return e.Email, nil
		}
	}
	if u.Email != "" {
		return u.Email, nil
	}
	return fmt.Sprintf("%d+%s@users.noreply.github.com", u.ID, u.Login), nil
}

// Repos lists every repository the user can reach, following the Link header's next pages.
func (c *Client) Repos(ctx context.Context, token string) ([]Repo, error) {
	maxPages := c.MaxPages
	if maxPages <= 0 {
		maxPages = 100
	}
	next := c.api("/user/repos?per_page=100&sort=full_name")
	var all []Repo
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%w: more than %d pages of repositories", ErrUnavailable, maxPages)
		}
		var repos []Repo
		h, err := c.get(ctx, token, next, &repos)
		if err != nil {
			return nil, err
		}
		all = append(all, repos...)
		next = nextLink(h.Get("Link"))
		if next != "" && !c.sameOrigin(next) {
			// Never send the token anywhere but the configured API.
			return nil, fmt.Errorf("%w: pagination link leaves the API host", ErrUnavailable)
		}
	}
	return all, nil
}

// Repository reads the repository fullName ("owner/name") with token: nil when the token may
// read it, ErrRepoNotFound, ErrRepoNeedsApp, or the errors of any call.
func (c *Client) Repository(ctx context.Context, token, fullName string) (Repo, error) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok {
		return Repo{}, fmt.Errorf("%w: %q is not owner/name", ErrRepoNotFound, fullName)
	}
	var r Repo
	_, err := c.get(ctx, token, c.api("/repos/"+url.PathEscape(owner)+"/"+url.PathEscape(name)), &r)
	var se *statusError
	switch {
	case errors.As(err, &se) && se.status == http.StatusNotFound:
		return Repo{}, ErrRepoNotFound
	case errors.As(err, &se) && se.status == http.StatusForbidden:
		return Repo{}, ErrRepoNeedsApp
	case err != nil:
		return Repo{}, err
	}
	return r, nil
}

func (c *Client) api(path string) string { return strings.TrimRight(c.APIURL, "/") + path }

func (c *Client) sameOrigin(link string) bool {
	a, err1 := url.Parse(c.APIURL)
	b, err2 := url.Parse(link)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && a.Host == b.Host
}

type statusError struct{ status int }

func (e *statusError) Error() string { return "GitHub answered " + strconv.Itoa(e.status) }

func (c *Client) get(ctx context.Context, token, u string, dst any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GitHub request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, redact(err))
	}
	defer resp.Body.Close()
	path := req.URL.Path
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, ErrBadToken
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("%w: GET %s answered %d", ErrUnavailable, path, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %w", path, &statusError{resp.StatusCode})
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(dst); err != nil {
		return nil, fmt.Errorf("%w: GET %s: undecodable answer", ErrUnavailable, path)
	}
	return resp.Header, nil
}

// nextLink extracts rel="next" from an RFC 8288 Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		segs := strings.Split(part, ";")
		if len(segs) < 2 {
			continue
		}
		target := strings.TrimSpace(segs[0])
		for _, p := range segs[1:] {
			if strings.ReplaceAll(strings.TrimSpace(p), " ", "") == `rel="next"` && strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

// redact keeps transport errors from carrying a URL's query (where a code could sit).
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + strings.SplitN(ue.URL, "?", 2)[0] + ": " + ue.Err.Error()
	}
	return err.Error()
}

// safe keeps only the characters of an OAuth error code, so nothing odd reaches a message.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
