package functions

import "net/http"

// GetCurrentUser answers GET /users/me: the caller's User, API keys masked.
func GetCurrentUser(a *App, w http.ResponseWriter, r *http.Request) error {
	d, err := currentUser(r.Context(), a, Caller(r.Context()).UserID, 0)
	if err != nil {
		return err
	}
	writeUser(a, w, d)
	return nil
}
