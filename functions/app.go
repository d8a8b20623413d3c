// Package functions is the HTTP and event edge of the system: one file per endpoint and one per
// event consumer or scheduled job. It translates requests and events into calls on the domain
// (events/) and the read models (projections/), and nothing more.
package functions

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/sandbox"
)

// App is everything a function needs, assembled once per process by Open.
type App struct {
	Config config.Config
	Log    *events.Log // append + publish
	Events events.Store
	Docs   projections.DocStore
	Clock  clock.Clock
	Logger *slog.Logger
	Auth   Authenticator
	// Sandboxes runs the sessions' sandboxes (local processes, or Cloud Run services).
	Sandboxes sandbox.Runtime

	closers []func() error
}

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

// Handler is an endpoint: it writes its success response itself and returns any error, which
// the route wrapper writes in the spec's shape.
type Handler func(a *App, w http.ResponseWriter, r *http.Request) error

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
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
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

// Mux serves every route at its real path under /api/v1, plus the docs page, the consumer push
// endpoints and anything extra (the GCP backend's push handler) registered by Open.
func (a *App) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.Handle(rt.Method+" "+Prefix+rt.Path, a.serve(rt))
	}
	mux.HandleFunc("GET "+Prefix+"/openapi.json", serveSpec)
	mux.HandleFunc("GET /docs", serveDocs)
	a.mountConsumers(mux)
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
