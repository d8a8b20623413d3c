package app

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/httpapi"
)

// Process is a Cloud Functions process: it registers one entry point per route, consumer and
// scheduled job (the root package does, with functions-framework-go), and builds its App from
// the environment on the first request that needs it, so a cold start pays for nothing else.
type Process struct {
	wiring Wiring
	mu     sync.Mutex // held while the App is being built
	app    atomic.Pointer[App]
}

// NewProcess returns the process that serves w.
func NewProcess(w Wiring) *Process { return &Process{wiring: w} }

// App is the process's App, built from the environment on first use. A build that fails is
// tried again by the next request: one transient error (a store not answering during a cold
// start) must not break the instance for the rest of its life.
func (p *Process) App() (*App, error) {
	if a := p.app.Load(); a != nil {
		return a, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.app.Load(); a != nil {
		return a, nil
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	a, err := Open(context.Background(), cfg, p.wiring)
	if err != nil {
		return nil, err
	}
	p.app.Store(a)
	return a, nil
}

// lazy serves with the handler build returns for the process's App, built on the first request
// that finds the App; while the App cannot be built, a request answers a 500 that does not leak
// the configuration error (Pub/Sub and the scheduler retry), and the next one tries again.
func (p *Process) lazy(build func(a *App) http.Handler) http.HandlerFunc {
	var (
		mu sync.Mutex
		h  atomic.Pointer[http.Handler]
	)
	return func(w http.ResponseWriter, r *http.Request) {
		hp := h.Load()
		if hp == nil {
			a, err := p.App()
			if err != nil {
				httpapi.WriteError(w, err)
				return
			}
			mu.Lock()
			if hp = h.Load(); hp == nil {
				built := httpapi.Wrap(a.Logger, a.Config.Project, build(a))
				hp = &built
				h.Store(hp)
			}
			mu.Unlock()
		}
		(*hp).ServeHTTP(w, r)
	}
}

// RouteFunction serves one route as a standalone function (FUNCTION_TARGET=CreateSession serves
// exactly that operation): at its real path (behind the load balancer, which forwards
// /api/v1/...), at its path without the prefix, and, when the path has no parameters, at "/".
func (p *Process) RouteFunction(rt Route) http.HandlerFunc {
	return p.lazy(func(a *App) http.Handler {
		mux := http.NewServeMux()
		mux.Handle(rt.Method+" "+Prefix+rt.Path, a.serve(rt))
		mux.Handle(rt.Method+" "+rt.Path, a.serve(rt))
		if !strings.Contains(rt.Path, "{") {
			mux.Handle(rt.Method+" /{$}", a.serve(rt))
		}
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, "this function serves %s %s%s", rt.Method, Prefix, rt.Path))
		})
		return mux
	})
}

// ConsumerFunction serves the Pub/Sub push deliveries of consumer name.
func (p *Process) ConsumerFunction(name string) http.HandlerFunc {
	return postOnly(p.lazy(func(a *App) http.Handler { return a.pushHandler(name) }))
}

// JobFunction runs one pass of scheduled job j per call (Cloud Scheduler's) and answers its
// result; a failed pass is a 500, and the scheduler tries again on its next run.
func (p *Process) JobFunction(j Job) http.HandlerFunc {
	return postOnly(p.lazy(func(a *App) http.Handler { return a.runJob(j) }))
}

func postOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "method not allowed"))
			return
		}
		h(w, r)
	}
}

// Stop closes the process's App, if it was built: what the instance buffers (the API keys' last
// use) is written out. Cloud Run tells an instance to stop with SIGTERM and kills it seconds
// later; see StopOnSignal.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.app.Swap(nil)
	if a == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopGrace bounds Stop on SIGTERM: Cloud Run kills the instance 10 s after the signal.
const stopGrace = 8 * time.Second

// StopOnSignal stops the process on SIGTERM (flushing its buffers), then exits: the functions
// framework serves until killed and has no shutdown of its own.
func (p *Process) StopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		code := 0
		if err := p.Stop(ctx); err != nil {
			code = 1
		}
		cancel()
		os.Exit(code)
	}()
}
