package functions

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/github"
	"github.com/codeset/codeset/shared/httpapi"
)

type gitHubOAuthRequest struct {
	Code        string  `json:"code" required:"true"`
	State       *string `json:"state"`
	RedirectURI *string `json:"redirect_uri"`
}

type gitHubOAuthResponse struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	IsNewUser    bool   `json:"is_new_user"`
}

// GithubOauth answers POST /auth/github: exchange the code with GitHub, read the account and its
// primary verified email, register the user (with the sign-up credit) or log them in, and issue
// tokens. The state parameter is the browser's CSRF check, done by the front end.
func GithubOauth(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req gitHubOAuthRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Code) == "" {
		return httpapi.Invalid("string_too_short", "String should have at least 1 character", "body", "code")
	}
	id, err := a.Identities()
	if err != nil {
		return err
	}
	if a.Config.GitHubClientID == "" {
		return httpapi.BadRequest("GitHub login is not configured on this server")
	}
	redirect := ""
	if req.RedirectURI != nil && *req.RedirectURI != "" {
		redirect = *req.RedirectURI
		if !slices.Contains(a.Config.GitHubRedirectURIs, redirect) {
			return httpapi.BadRequest("redirect_uri is not one this server allows")
		}
	}
	ctx := r.Context()
	token, err := id.GitHub.Exchange(ctx, req.Code, redirect)
	if err != nil {
		return gitHubError(a, r, err)
	}
	gh, err := id.GitHub.User(ctx, token)
	if err != nil {
		return gitHubError(a, r, err)
	}
	email, err := id.GitHub.PrimaryEmail(ctx, token, gh)
	if err != nil {
		return gitHubError(a, r, err)
	}
	githubID := strconv.FormatInt(gh.ID, 10)
	userID := events.GitHubUserID(githubID)
	sealed, err := id.Sealer.Seal(token, userID)
	if err != nil {
		return err
	}
	name := gh.Name
	if name == "" {
		name = gh.Login
	}
	profile := events.Profile{Name: name, Email: email, GitHubID: githubID, GitHubLogin: gh.Login, GitHubToken: sealed}
	isNew := false
	u, err := changeUser(ctx, a, userID, func(u events.User) ([]events.Envelope, error) {
		now := a.Clock.Now()
		if !u.Exists() {
			isNew = true
			return events.Register(u, newEventID(), userID, profile, false, now)
		}
		isNew = false
		return events.LogIn(u, newEventID(), profile, now)
	})
	if err != nil {
		return userError(err)
	}
	if isNew {
		err = grantSignupCredit(ctx, a, u)
	} else {
		err = ensureSignupCredit(ctx, a, u)
	}
	if err != nil {
		return err
	}
	access, refresh, expiresIn, err := issueTokens(id, u)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, gitHubOAuthResponse{UserID: userID, AccessToken: access, RefreshToken: refresh,
		TokenType: "Bearer", ExpiresIn: expiresIn, IsNewUser: isNew})
	return nil
}

// gitHubError maps GitHub's failures to clear 400s, as the identity issue asks of every GitHub
// error: the caller learns whether to retry, log in again, or call the operator. Causes on
// GitHub's or this server's side are logged (the github package's errors never carry a code or
// a token).
func gitHubError(a *app.App, r *http.Request, err error) error {
	if !errors.Is(err, github.ErrBadCode) && !errors.Is(err, github.ErrBadToken) {
		a.Logger.WarnContext(r.Context(), "GitHub call failed", "error", err.Error())
	}
	switch {
	case errors.Is(err, github.ErrBadCode):
		return httpapi.BadRequest("GitHub refused the authorization code (invalid, expired, already used, or issued for another redirect_uri)")
	case errors.Is(err, github.ErrBadToken):
		return httpapi.BadRequest("GitHub refused the stored GitHub token; log in with GitHub again")
	case errors.Is(err, github.ErrMisconfigured):
		return httpapi.BadRequest("GitHub refused this server's OAuth client credentials; the operator must fix CODESET_GITHUB_CLIENT_ID/SECRET")
	case errors.Is(err, github.ErrUnavailable):
		return httpapi.BadRequest("GitHub could not be reached or failed; try again later")
	}
	return httpapi.BadRequest("GitHub answered unexpectedly; try again later")
}

// issueTokens issues the access and refresh tokens of a login.
func issueTokens(id *app.Identity, u events.User) (access, refresh string, expiresIn int64, err error) {
	access, ttl, err := id.Tokens.Issue(u.ID, auth.UseAccess, u.TokenGeneration)
	if err != nil {
		return "", "", 0, err
	}
	refresh, _, err = id.Tokens.Issue(u.ID, auth.UseRefresh, u.TokenGeneration)
	if err != nil {
		return "", "", 0, err
	}
	return access, refresh, int64(ttl / time.Second), nil
}
