package functions

import (
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/httpapi"
)

// HealthCheck answers GET /health. It touches no storage: it says the process serves. While
// `codeset serve` still runs its startup tasks it answers 503 "starting", so that whoever waits
// for health then reads the bootstrap key or lists the demo finds them.
func HealthCheck(a *app.App, w http.ResponseWriter, r *http.Request) error {
	code, status := http.StatusOK, "healthy"
	if a.Starting() {
		code, status = http.StatusServiceUnavailable, "starting"
	}
	httpapi.WriteJSON(w, code, health{
		Status:    status,
		Service:   a.Config.Service,
		Version:   a.Config.Version,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
	})
	return nil
}

// health is HealthCheckResponse; a struct encodes several times faster than a map (no key
// sorting), and health is what load balancers and probes call most.
type health struct {
	Status    string `json:"status"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Timestamp string `json:"timestamp"`
}
