package functions

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
)

var (
	defaultOnce sync.Once
	defaultApp  *App
	defaultErr  error
)

// Default is the process's App built from the environment, once, on first use. Cloud Functions
// use it; `codeset serve` builds its own.
func Default() (*App, error) {
	defaultOnce.Do(func() {
		cfg, err := config.FromEnv()
		if err != nil {
			defaultErr = err
			return
		}
		defaultApp, defaultErr = Open(context.Background(), cfg)
	})
	return defaultApp, defaultErr
}

// FunctionHandler serves one route as a standalone function (the root package registers it
// under the route's name, so that FUNCTION_TARGET=CreateSession serves exactly that operation;
// the App is built on the first request): at its real path (behind the load
// balancer, which forwards /api/v1/...), at its path without the prefix, and, when the path has
// no parameters, at "/".
func FunctionHandler(rt Route) http.HandlerFunc {
	var (
		once sync.Once
		h    http.Handler
	)
	return func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			a, err := Default()
			if err != nil {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					httpapi.WriteError(w, err) // a 500 that does not leak the configuration error
				})
				return
			}
			mux := http.NewServeMux()
			mux.Handle(rt.Method+" "+Prefix+rt.Path, a.serve(rt))
			mux.Handle(rt.Method+" "+rt.Path, a.serve(rt))
			if !strings.Contains(rt.Path, "{") {
				mux.Handle(rt.Method+" /{$}", a.serve(rt))
			}
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, "this function serves %s %s%s", rt.Method, Prefix, rt.Path))
			})
			h = httpapi.Wrap(a.Logger, a.Config.Project, mux)
		})
		h.ServeHTTP(w, r)
	}
}
