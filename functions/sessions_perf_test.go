package functions

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
)

// The session figures of docs/PERFORMANCE.md:
//
//	CODESET_BENCH=1 go test -run TestSessionPerformance -v ./functions/
//
// Without CODESET_BENCH it is skipped; TestManySessionsAtOnce runs in every `make test` with 10
// sessions (CODESET_BENCH_SESSIONS=N changes that; the benchmark uses 100).

func p50(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func p90(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*9/10]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// createToReady posts a session and polls it every millisecond until it is ready.
func (h *sessionHarness) createToReady(user string) (string, time.Duration) {
	h.t.Helper()
	start := time.Now()
	var created struct {
		SessionID string `json:"session_id"`
	}
	h.expect(http.StatusCreated, user, "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample, "ttl_minutes": 30}, &created)
	for {
		var s sessionView
		h.expect(http.StatusOK, user, "GET", "/sessions/"+created.SessionID, nil, &s)
		if s.Status == "ready" {
			return created.SessionID, time.Since(start)
		}
		if s.Status != "creating" {
			h.t.Fatalf("session %s is %s: %+v", created.SessionID, s.Status, s.Error)
		}
		time.Sleep(time.Millisecond)
	}
}

// cpuTime is the CPU this process has used: steadier than wall time on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func TestSessionPerformance(t *testing.T) {
	if os.Getenv("CODESET_BENCH") == "" {
		t.Skip("set CODESET_BENCH=1 to measure")
	}
	h := newSessionHarness(t, "", nil, func(c *config.Config) { c.MaxActiveSessions = 1000 })
	h.addSample(events.Environment{Archive: sampleArchive(t), WorkDir: "/workspace/repo"})
	h.credit("bench", 1_000_000)
	h.credit("many", 1_000_000)
	if d, ok := h.a.Sandboxes.(interface{ Describe() string }); ok {
		t.Log(d.Describe())
	}

	var ready []time.Duration
	for i := 0; i < 30; i++ {
		sid, d := h.createToReady("bench")
		if i >= 3 { // the first starts unpack the archive
			ready = append(ready, d)
		}
		h.expect(http.StatusOK, "bench", "DELETE", "/sessions/"+sid, nil, nil)
	}
	t.Logf("POST /sessions to ready: p50 %s, p90 %s (n=%d)", ms(p50(ready)), ms(p90(ready)), len(ready))

	sid := h.openSession("bench")
	for range 5 {
		h.run("bench", sid, "true", 10)
	}
	var api, bare []time.Duration
	var apiCPU time.Duration
	for range 60 {
		c0 := cpuTime()
		start := time.Now()
		h.run("bench", sid, "true", 10)
		api = append(api, time.Since(start))
		apiCPU += cpuTime() - c0
		start = time.Now()
		if err := exec.Command("bash", "-c", "true").Run(); err != nil {
			t.Fatal(err)
		}
		bare = append(bare, time.Since(start))
	}
	t.Logf("POST exec true until completed (?wait): p50 %s, p90 %s; bare fork/exec of bash -c true: p50 %s; overhead p50 %s",
		ms(p50(api)), ms(p90(api)), ms(p50(bare)), ms(p50(api)-p50(bare)))
	t.Logf("CPU time of this process (server and client) per exec: %s; load average %s", ms(apiCPU/time.Duration(len(api))), loadAverage())

	manySessions(t, h, 100)
}

func TestManySessionsAtOnce(t *testing.T) {
	n := 10
	if v, err := strconv.Atoi(os.Getenv("CODESET_BENCH_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	h := newSessionHarness(t, "", nil, func(c *config.Config) { c.MaxActiveSessions = int64(n) })
	h.addSample(events.Environment{Archive: sampleArchive(t)})
	h.credit("many", 1_000_000)
	manySessions(t, h, n)
}

// manySessions opens n sessions at once, waits until all are ready, then runs one exec in each,
// all at once, and closes them.
func manySessions(t *testing.T, h *sessionHarness, n int) {
	t.Helper()
	ids := make([]string, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = h.openSession("many")
		}()
	}
	wg.Wait()
	allReady := time.Since(start)
	execs := make([]time.Duration, n)
	start = time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			it := h.run("many", ids[i], fmt.Sprintf("echo %d", i), 60)
			execs[i] = time.Since(t0)
			if *it.ExitCode != 0 || *it.Stdout != fmt.Sprintf("%d\n", i) {
				t.Errorf("session %d: %+v", i, it)
			}
		}()
	}
	wg.Wait()
	allExec := time.Since(start)
	start = time.Now()
	for _, id := range ids {
		h.expect(http.StatusOK, "many", "DELETE", "/sessions/"+id, nil, nil)
	}
	closed := time.Since(start)
	for _, id := range ids {
		h.expectStopped(id)
	}
	t.Logf("%d sessions: all ready in %s; one exec in each at once: all answered in %s (each p50 %s); closed one after the other in %s",
		n, allReady.Round(10*time.Millisecond), allExec.Round(10*time.Millisecond), ms(p50(execs)), closed.Round(10*time.Millisecond))
}
