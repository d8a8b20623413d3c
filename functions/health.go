package functions

import (
	"net/http"
	"time"

	"github.com/codeset/codeset/shared/httpapi"
)

// HealthCheck answers GET /health. It touches no storage: it says the process serves.
func HealthCheck(a *App, w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{
		"status":    "healthy",
		"service":   a.Config.Service,
		"version":   a.Config.Version,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
	})
	return nil
}
