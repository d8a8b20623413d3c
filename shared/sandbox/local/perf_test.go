package local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// TestPerformance measures a sandbox's costs (docs/PERFORMANCE.md, "Where the time goes"): exec
// of `true` through the client over the unix socket against a bare fork/exec of `bash -c true` in the
// same run, the start time of a sandbox, and N sandboxes at once each answering exec. It is a
// measurement, not a unit test: it runs only with CODESET_BENCH=1 (N from CODESET_BENCH_SANDBOXES,
// default 100).
func TestPerformance(t *testing.T) {
	if os.Getenv("CODESET_BENCH") != "1" {
		t.Skip("a measurement: set CODESET_BENCH=1 to run it")
	}
	arch := archive(t)
	ctx := context.Background()
	for _, mode := range modes(t) {
		r := newRuntime(t, t.TempDir(), mode)

		var starts []time.Duration
		var infos []sandbox.Info
		for i := range 20 {
			t0 := time.Now()
			info, err := r.Start(ctx, spec(fmt.Sprintf("ses_perf_%d", i), arch))
			if err != nil {
				t.Fatal(err)
			}
			starts = append(starts, time.Since(t0))
			infos = append(infos, info)
		}
		c := r.Client(infos[0])
		c.Exec(ctx, "true", 10*time.Second) // warm the connection
		var viaAgent, bare []time.Duration
		for range 200 {
			t0 := time.Now()
			if res, err := c.Exec(ctx, "true", 10*time.Second); err != nil || res.ExitCode != 0 {
				t.Fatal(res, err)
			}
			viaAgent = append(viaAgent, time.Since(t0))
			t0 = time.Now()
			if err := exec.Command("bash", "-c", "true").Run(); err != nil {
				t.Fatal(err)
			}
			bare = append(bare, time.Since(t0))
		}
		var stops []time.Duration
		for _, info := range infos {
			t0 := time.Now()
			if err := r.Stop(ctx, info); err != nil {
				t.Fatal(err)
			}
			stops = append(stops, time.Since(t0))
		}
		t.Logf("[%s] start: %s", mode, pcts(starts))
		t.Logf("[%s] stop: %s", mode, pcts(stops))
		t.Logf("[%s] exec true via agent (unix socket): %s", mode, pcts(viaAgent))
		t.Logf("[%s] bare fork/exec bash -c true: %s", mode, pcts(bare))
		t.Logf("[%s] overhead p50: %.2f ms", mode, ms(p(viaAgent, 50)-p(bare, 50)))
	}

	n := 100
	if v, err := strconv.Atoi(os.Getenv("CODESET_BENCH_SANDBOXES")); err == nil && v > 0 {
		n = v
	}
	r := newRuntime(t, t.TempDir(), local.Auto)
	infos := make([]sandbox.Info, n)
	var mu sync.Mutex
	var execs []time.Duration
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := r.Start(ctx, spec(fmt.Sprintf("ses_many_%d", i), arch))
			if err != nil {
				t.Error(err)
				return
			}
			infos[i] = info
		}()
	}
	wg.Wait()
	allUp := time.Since(t0)
	// Every sandbox is up at once; now each answers an exec, all together.
	t0 = time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if infos[i].Name == "" {
				return
			}
			e0 := time.Now()
			res, err := r.Client(infos[i]).Exec(ctx, "cat pkg/hello.txt", 30*time.Second)
			if err != nil || res.Stdout != "hello from the sample\n" {
				t.Errorf("sandbox %d: %+v %v", i, res, err)
				return
			}
			mu.Lock()
			execs = append(execs, time.Since(e0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	allExec := time.Since(t0)
	t.Logf("[%s] %d sandboxes started concurrently in %s; %d answered exec concurrently in %s (per exec %s)",
		r.Mode(), n, allUp.Round(time.Millisecond), len(execs), allExec.Round(time.Millisecond), pcts(execs))
	t0 = time.Now()
	for _, info := range infos {
		if info.Name != "" {
			r.Stop(ctx, info)
		}
	}
	t.Logf("[%s] %d sandboxes stopped in %s", r.Mode(), n, time.Since(t0).Round(time.Millisecond))
}

func p(ds []time.Duration, pct int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*pct/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, max %.2f ms (n=%d)", ms(p(ds, 50)), ms(p(ds, 90)), ms(p(ds, 100)), len(ds))
}
