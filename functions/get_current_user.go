package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
)

// GetCurrentUser answers GET /users/me: the caller's User, API keys masked.
func GetCurrentUser(a *app.App, w http.ResponseWriter, r *http.Request) error {
	d, err := currentUser(r.Context(), a, app.Caller(r.Context()).UserID, 0)
	if err != nil {
		return err
	}
	writeUser(a, w, d)
	return nil
}
