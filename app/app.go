// Package app is the running application: the App that every function receives, Open (the
// embedded or the GCP backend), the write path (Update), the consumer pipeline and the entry
// points of a Cloud Functions process. What it runs (routes, consumers, startup tasks,
// scheduled jobs) is handed to it as a Wiring by package functions; it imports no handler.
package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/sandbox"
)

// App is everything a function needs, assembled once per process by Open. Functions read the
// event store (Events) and the read models (Docs); they write only through Update.
type App struct {
	Config config.Config
	Events events.Store
	Docs   projections.DocStore
	Clock  clock.Clock
	Logger *slog.Logger
	// Console is where what an operator must read but the log must never carry is printed (the
	// bootstrap API key): stdout for `codeset serve`; tests keep it out of their output.
	Console io.Writer
	Auth    Authenticator
	// Identity is the identity services (tokens, GitHub, the sealer) when Open built them.
	Identity *Identity
	// Blobs holds the values too large for an event or a document (long command output,
	// verification reports, environment archives): <data>/blobs, or a Cloud Storage bucket.
	Blobs blob.Store
	// Sandboxes runs the sessions' sandboxes (local processes, or Cloud Run services).
	Sandboxes sandbox.Runtime
	// Samples is the in-memory index behind GET /samples (see projections.SampleIndex).
	Samples *projections.SampleIndex
	// AgentRunner launches agent jobs (a local process, or a Cloud Run Jobs execution). Nil
	// when this process has none: a job it is asked to launch fails and is refunded.
	AgentRunner agentjob.Runner
	// Completions wakes the requests waiting on an interaction when it completes.
	Completions *projections.Completions

	// Wiring is what this App runs: its routes, consumers, startup tasks and scheduled jobs.
	Wiring Wiring

	publisher events.Publisher // the bus: Pub/Sub, or the in-process dispatcher
	pipeline  *pipeline
	clients   sync.Map // session id -> cachedClient
	starting  atomic.Bool
	closers   []func() error
}

// ReportAgentJob is the agentjob.Report of this App, for a runner that watches its jobs and
// cannot reach the completion endpoint: the same code as the endpoint (Wiring.AgentJobReport).
func (a *App) ReportAgentJob(ctx context.Context, jobID, secret, outcome, errorMessage string, result *blob.Ref) error {
	if a.Wiring.AgentJobReport == nil {
		return errors.New("this App's wiring has no agent-job completion")
	}
	return a.Wiring.AgentJobReport(ctx, a, jobID, secret, outcome, errorMessage, result)
}

var _ agentjob.Report = (*App)(nil).ReportAgentJob

// Close releases what Open acquired, in reverse order.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}

// Principal is the authenticated caller.
type Principal struct {
	UserID string
	KeyID  string // set when the caller used an API key
}

// Authenticator turns a request's credentials into a Principal, or an *httpapi.Error (401).
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (Principal, error)
}

type principalKey struct{}

// Caller returns the authenticated caller of a Bearer route.
func Caller(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// WithCaller returns ctx as a Bearer route's handler sees it when p called.
func WithCaller(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// serve wraps a route's handler with authentication and error writing.
func (a *App) serve(rt Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rt.Auth == Bearer {
			if a.Auth == nil {
				httpapi.WriteError(w, httpapi.Unauthorized("authentication is not configured"))
				return
			}
			p, err := a.Auth.Authenticate(r.Context(), r)
			if err != nil {
				a.writeError(r, w, err)
				return
			}
			r = r.WithContext(WithCaller(r.Context(), p))
		}
		if err := rt.Handler(a, w, r); err != nil {
			a.writeError(r, w, err)
		}
	}
}

func (a *App) writeError(r *http.Request, w http.ResponseWriter, err error) {
	if !httpapi.IsClientError(err) && a.Logger != nil {
		a.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	}
	httpapi.WriteError(w, err)
}

// Mux serves every route at its real path under /api/v1, the wiring's pages (the contract and
// its docs), the consumer push endpoints, the scheduled jobs when they are called from outside
// (--scheduler external), and a 404 in the spec's shape for anything else.
func (a *App) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range a.Wiring.Routes {
		mux.Handle(rt.Method+" "+Prefix+rt.Path, a.serve(rt))
	}
	for pattern, h := range a.Wiring.Pages {
		mux.HandleFunc(pattern, h)
	}
	a.mountConsumers(mux)
	if a.ExternalScheduler() {
		a.mountJobs(mux)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/docs", http.StatusFound)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, httpapi.NotFound("route"))
	})
	return mux
}

// Handler is the whole HTTP surface with the request middleware.
func (a *App) Handler() http.Handler {
	return httpapi.Wrap(a.Logger, a.Config.Project, a.Mux())
}
