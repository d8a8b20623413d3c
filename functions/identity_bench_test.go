package functions

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/logging"
)

// BenchmarkGetCurrentUserAPIKey is the identity figure of docs/PERFORMANCE.md: authenticated
// GET /users/me with an API key, 64 concurrent keep-alive connections over loopback, on the
// embedded default (SQLite), access log on (JSON formatted, written to io.Discard).
//
//	go test -run '^$' -bench GetCurrentUserAPIKey -benchtime 200000x ./functions/
func BenchmarkGetCurrentUserAPIKey(b *testing.B) { benchGet(b, "/users/me") }

// BenchmarkHealthBaseline is the same load on GET /health (no auth, no storage): the ceiling
// the machine allows, to read the identity figure against.
func BenchmarkHealthBaseline(b *testing.B) { benchGet(b, "/health") }

func benchGet(b *testing.B, path string) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	a, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	a.Logger = logging.New(io.Discard, 0)
	bootstrapOut = io.Discard
	defer func() { bootstrapOut = os.Stdout }()
	if err := bootstrap(context.Background(), a); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, BootstrapKeyFile))
	if err != nil {
		b.Fatal(err)
	}
	auth := "Bearer " + strings.TrimSpace(string(raw))
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	const conns = 64
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	url := srv.URL + Prefix + path
	get := func() error {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", auth)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	for range conns { // open the connections before timing
		if err := get(); err != nil {
			b.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := get(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
