package app

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/codeset/codeset/shared/httpapi"
)

// JobPath is where `codeset serve --scheduler external` serves scheduled job name: a scheduler
// outside the process (make run-emulated's, standing in for Cloud Scheduler) calls it.
func JobPath(name string) string { return "/_jobs/" + name }

// ExternalScheduler reports whether the scheduled jobs are called from outside (Cloud Scheduler,
// or POST /_jobs/<name>) rather than ticked by the process itself.
func (a *App) ExternalScheduler() bool { return a.Config.Scheduler == "external" }

// mountJobs serves POST /_jobs/{name}, one pass of the job per call, to callers on the loopback
// only: a pass is harmless (idempotent, bounded) but it is the operator's to trigger, and
// `codeset serve` may listen on a public address. A request relayed by a proxy on the same
// machine (X-Forwarded-For) is refused too. Elsewhere the path does not exist.
func (a *App) mountJobs(mux *http.ServeMux) {
	// The schedule, for the scheduler: one line per job, its name and its local period in
	// seconds (what Cloud Scheduler's job would be set to), plain text for a shell loop.
	mux.HandleFunc("GET /_jobs", func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			httpapi.WriteError(w, httpapi.NotFound("route"))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, j := range a.Wiring.Jobs {
			if every := j.Every(a.Config); every > 0 {
				fmt.Fprintf(w, "%s %d\n", j.Name, max(1, int(every.Round(time.Second)/time.Second)))
			}
		}
	})
	mux.HandleFunc("POST "+JobPath("{name}"), func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			httpapi.WriteError(w, httpapi.NotFound("route"))
			return
		}
		for _, j := range a.Wiring.Jobs {
			if j.Name == r.PathValue("name") {
				a.runJob(j).ServeHTTP(w, r)
				return
			}
		}
		httpapi.WriteError(w, httpapi.NotFound("job"))
	})
}

// runJob makes one pass of j per request and answers its result; a failed pass is a 500 (and
// is logged), and the scheduler's next call tries again.
func (a *App) runJob(j Job) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := j.Run(r.Context(), a)
		if err != nil {
			a.writeError(r, w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
	}
}

func fromLoopback(r *http.Request) bool {
	if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
