package functions

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
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
	a := openApp(b, appSpec{RealAuth: true, Serve: true})
	if err := bootstrap(context.Background(), a.App); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(a.Config.DataDir, BootstrapKeyFile))
	if err != nil {
		b.Fatal(err)
	}
	auth := "Bearer " + strings.TrimSpace(string(raw))

	const conns = 64
	// The load generator speaks HTTP/1.1 on raw keep-alive connections (a fixed request; the
	// status line and Content-Length read back), so it leaves the two CPUs to the server rather
	// than to an HTTP client library.
	host := strings.TrimPrefix(a.URL, "http://")
	request := []byte("GET " + app.Prefix + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: " + auth + "\r\n\r\n")
	type conn struct {
		c net.Conn
		r *bufio.Reader
	}
	cs := make([]conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = conn{c, bufio.NewReader(c)}
	}
	get := func(c conn) error {
		if _, err := c.c.Write(request); err != nil {
			return err
		}
		status, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
			return fmt.Errorf("status %q", strings.TrimSpace(status))
		}
		length := -1
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				return err
			}
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if length < 0 {
			return errors.New("no Content-Length")
		}
		_, err = c.r.Discard(length)
		return err
	}
	for _, c := range cs { // warm every connection before timing
		if err := get(c); err != nil {
			b.Fatal(err)
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := get(c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	// CPU time per request (server and load generator together) moves far less than req/s
	// when other work shares the machine: 2 CPUs / this is what an idle machine would do.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
