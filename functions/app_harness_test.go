package functions

// The one way the tests of this package open an application: openApp, from an appSpec. The
// harnesses of the capabilities (sessions, billing, catalog, identity, verification) wrap it
// with their own helpers; none opens an App by itself. And the one way they wait for something:
// eventually.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
)

// appSpec says how a test's App is opened. The zero value is the embedded default on a fresh
// data dir, Wiring()'s tables, the tests' bearer auth, no log, nothing running, not served.
type appSpec struct {
	// Backend is "embedded" (or "") or "gcp": Firestore and Pub/Sub on their emulators (the test
	// skips without them), pushing to the App's own server.
	Backend string
	DataDir string // "": a fresh temp dir
	Tune    func(*config.Config)
	// Consumers are added to Wiring()'s.
	Consumers []app.Consumer
	Auth      app.Authenticator // nil: tokenAuth (the bearer token is the user id)
	// RealAuth keeps the App's own authenticator (API keys and JWTs) instead.
	RealAuth  bool
	Logger    *slog.Logger    // nil: discarded
	Sandboxes sandbox.Runtime // nil: the runtime Open built from the configuration
	Clock     clock.Clock     // nil: the system's
	// Run is what runs in the background until the test ends: nothing, the bus only, or what
	// `codeset serve` runs (start-up tasks, bus, scheduled jobs).
	Run runMode
	// Serve serves the App over HTTP (the gcp backend always is, for Pub/Sub's pushes); Wrap,
	// when set, wraps its handler.
	Serve bool
	Wrap  func(http.Handler) http.Handler
	// Prepare, when set, may replace parts of the App before anything runs.
	Prepare func(*app.App)
	// Project, on the gcp backend, is another instance of a deployment whose App opened this
	// emulator project: it shares its events, read models and topic, and leaves its push
	// subscriptions as they are (they keep pushing to the first instance).
	Project string
}

type runMode int

const (
	runNothing runMode = iota
	runBus
	runServe
)

// testApp is an App opened by openApp, and where it is served (URL is "" when it is not).
type testApp struct {
	*app.App
	Config config.Config // as opened (the App's own may be changed by the test)
	URL    string
	// stop ends what runs and closes the App (also at the end of the test); calling it twice is
	// harmless.
	stop func()
}

// openApp opens an App as spec says and closes it when the test ends.
func openApp(t testing.TB, spec appSpec) *testApp {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.NoDemo, cfg.LogLevel = spec.DataDir, true, "error"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if spec.Tune != nil {
		spec.Tune(&cfg)
	}
	var srv *httptest.Server
	if spec.Serve || spec.Backend == "gcp" {
		srv = httptest.NewUnstartedServer(nil) // listening already: its URL can be the push target
	}
	if spec.Backend == "gcp" {
		useGCPBackend(t, &cfg, "http://"+srv.Listener.Addr().String())
		if spec.Project != "" {
			cfg.Project, cfg.ConsumerBase = spec.Project, ""
		}
	}
	w := Wiring()
	w.Consumers = append(w.Consumers, spec.Consumers...)
	openCtx, cancelOpen := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelOpen()
	a, err := app.Open(openCtx, cfg, w)
	if err != nil {
		if srv != nil {
			srv.Close()
		}
		t.Fatalf("open the %s backend: %v", cfg.Backend, err)
	}
	a.Console = io.Discard // the bootstrap key must not reach the test's output
	a.Logger = spec.Logger
	if a.Logger == nil {
		a.Logger = discardLogger()
	}
	switch {
	case spec.Auth != nil:
		a.Auth = spec.Auth
	case !spec.RealAuth:
		a.Auth = tokenAuth{}
	}
	if spec.Sandboxes != nil {
		a.Sandboxes = spec.Sandboxes
	}
	if spec.Clock != nil {
		a.Clock = spec.Clock
	}

	if spec.Prepare != nil {
		spec.Prepare(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	switch spec.Run {
	case runBus:
		running.Go(func() {
			if err := a.RunBus(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("bus: %v", err)
			}
		})
	case runServe:
		wg, err := a.Start(ctx)
		if err != nil {
			cancel()
			a.Close()
			t.Fatal(err)
		}
		running.Go(wg.Wait)
	}
	ta := &testApp{App: a, Config: a.Config}
	if srv != nil {
		var h http.Handler = a.Handler()
		if spec.Wrap != nil {
			h = spec.Wrap(h)
		}
		srv.Config.Handler = h
		srv.Start()
		ta.URL = srv.URL
	}
	var once sync.Once
	ta.stop = func() {
		once.Do(func() {
			if srv != nil {
				srv.CloseClientConnections() // a push still in flight must not keep Close waiting
				srv.Close()
			}
			cancel()
			running.Wait()
			a.Close()
		})
	}
	t.Cleanup(ta.stop)
	return ta
}

// eventually calls cond until it reports true, and fails the test with what its last call said
// if it has not within limit. Every wait of these tests for something asynchronous is this one.
func eventually(t testing.TB, limit time.Duration, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, state)
		}
		time.Sleep(pause)
	}
}
