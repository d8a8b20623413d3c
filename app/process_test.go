package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/auth"
)

// TestProcessRetriesAFailedOpen: a function instance whose App cannot be built answers 500
// without the cause's details, and builds it on a later request once the cause is gone, instead
// of failing until the instance is recycled.
func TestProcessRetriesAFailedOpen(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	// A file where the data dir must be: the embedded store cannot open there.
	if err := os.WriteFile(data, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CODESET_DATA_DIR", data)
	t.Setenv("CODESET_NO_DEMO", "true")
	t.Setenv("CODESET_SANDBOX_ISOLATION", "process")
	rt := Route{Method: "GET", Path: "/ping", Name: "Ping", Handler: func(a *App, w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}}
	p := NewProcess(Wiring{Routes: []Route{rt}})
	h := p.RouteFunction(rt)
	call := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/ping", nil))
		return rec
	}
	for range 2 {
		rec := call()
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), data) {
			t.Fatalf("with no App: %d %s, want a 500 that names no path", rec.Code, rec.Body.String())
		}
	}
	if err := os.Remove(data); err != nil {
		t.Fatal(err)
	}
	if rec := call(); rec.Code != http.StatusNoContent {
		t.Fatalf("once the data dir can be made: %d %s, want 204", rec.Code, rec.Body.String())
	}
	a, err := p.App()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if again, _ := p.App(); again != a {
		t.Error("a second App was built")
	}
}

// TestProcessStopFlushes: stopping a function process (its SIGTERM) writes out the API keys'
// last use it had buffered.
func TestProcessStopFlushes(t *testing.T) {
	t.Setenv("CODESET_DATA_DIR", t.TempDir())
	t.Setenv("CODESET_NO_DEMO", "true")
	t.Setenv("CODESET_SANDBOX_ISOLATION", "process")
	p := NewProcess(Wiring{})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("stop before any App: %v", err)
	}
	a, err := p.App()
	if err != nil {
		t.Fatal(err)
	}
	var flushed []auth.Use
	a.Identity.Usage.Flush = func(ctx context.Context, uses []auth.Use) error {
		flushed = append(flushed, uses...)
		return nil
	}
	at := time.Now()
	a.Identity.Usage.Touch("key_1", "user_1", at)
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(flushed) != 1 || flushed[0].KeyID != "key_1" || !flushed[0].At.Equal(at) {
		t.Fatalf("flushed at stop: %+v", flushed)
	}
}
