package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/config"
)

// openTestApp opens an embedded App in a temp dir running w, with scheduler sched.
func openTestApp(t *testing.T, sched string, w Wiring) *App {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.NoDemo, cfg.SandboxIsolation, cfg.Scheduler = t.TempDir(), true, "process", sched
	a, err := Open(context.Background(), cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestExternalScheduler: with --scheduler external no job ticks, and each answers POST
// /_jobs/<name> from the loopback only; with the internal scheduler the path does not exist.
func TestExternalScheduler(t *testing.T) {
	var passes atomic.Int64
	job := Job{Name: "Count", Every: func(config.Config) time.Duration { return time.Hour },
		Run: func(ctx context.Context, a *App) (any, error) { return map[string]int64{"pass": passes.Add(1)}, nil }}
	post := func(a *App, path, remote string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, nil)
		req.RemoteAddr = remote
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		return rec
	}

	internal := openTestApp(t, "internal", Wiring{Jobs: []Job{job}})
	if got := internal.tickedJobs(); len(got) != 1 {
		t.Fatalf("internal scheduler ticks %d jobs, want 1", len(got))
	}
	if rec := post(internal, "/_jobs/Count", "127.0.0.1:4000", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("internal scheduler: POST /_jobs/Count = %d, want 404", rec.Code)
	}

	a := openTestApp(t, "external", Wiring{Jobs: []Job{job}})
	if got := a.tickedJobs(); len(got) != 0 {
		t.Fatalf("external scheduler ticks %d jobs, want none", len(got))
	}
	for _, c := range []struct {
		name, path, remote string
		header             http.Header
		want               int
	}{
		{"another host", "/_jobs/Count", "192.0.2.7:4000", nil, http.StatusNotFound},
		{"relayed by a local proxy", "/_jobs/Count", "127.0.0.1:4000", http.Header{"X-Forwarded-For": {"192.0.2.7"}}, http.StatusNotFound},
		{"unknown job", "/_jobs/Nothing", "127.0.0.1:4000", nil, http.StatusNotFound},
		{"loopback v6", "/_jobs/Count", "[::1]:4000", nil, http.StatusOK},
		{"loopback", "/_jobs/Count", "127.0.0.1:4000", nil, http.StatusOK},
	} {
		rec := post(a, c.path, c.remote, c.header)
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body.String(), c.want)
		}
	}
	// Only the two loopback calls ran a pass, and each answered its result.
	var res map[string]int64
	if rec := post(a, "/_jobs/Count", "127.0.0.1:4000", nil); json.Unmarshal(rec.Body.Bytes(), &res) != nil || res["pass"] != 3 {
		t.Fatalf("third pass answered %d %s", rec.Code, rec.Body.String())
	}
	req := httptest.NewRequest("GET", "/_jobs", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != "Count 3600\n" {
		t.Errorf("the schedule: %d %q", rec.Code, rec.Body.String())
	}
	cfg := config.Default()
	cfg.Scheduler = "cron"
	if _, err := Open(context.Background(), cfg, Wiring{}); err == nil {
		t.Error("an unknown scheduler was accepted")
	}
}
