package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/httpapi"
)

type tokenRefreshRequest struct {
	RefreshToken string `json:"refresh_token" required:"true"`
}

type tokenRefreshResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// RefreshToken answers POST /auth/refresh: a new access token for a valid refresh token of an
// active user whose tokens were not revoked since. Anything else is a 401.
func RefreshToken(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req tokenRefreshRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	id, err := a.Identities()
	if err != nil {
		return err
	}
	c, err := id.Tokens.Parse(req.RefreshToken, auth.UseRefresh)
	if err != nil {
		return httpapi.Unauthorized("invalid or expired refresh token")
	}
	if err := id.Authn.CheckUser(r.Context(), c); err != nil {
		return err
	}
	access, ttl, err := id.Tokens.Issue(c.Subject, auth.UseAccess, c.Generation)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, tokenRefreshResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(ttl.Seconds())})
	return nil
}
