package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox/agent"
)

// A command's result says what it used.
func TestUsage(t *testing.T) {
	c, _ := start(t)
	res, err := c.Exec(context.Background(), `head -c 64M /dev/zero | tail >/dev/null; i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done`, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.PeakMemoryBytes < 64<<20 || res.CPUTime <= 0 {
		t.Errorf("usage: exit %d, peak %d bytes, CPU %s", res.ExitCode, res.PeakMemoryBytes, res.CPUTime)
	}
}

// The disk limit: a command that grows the watched directory past it is killed, one that only
// finds it over says so, and one that brings it back under says nothing.
func TestDiskLimit(t *testing.T) {
	dir := t.TempDir()
	w, err := agent.OpenLimits(agent.Limits{Disk: 8 << 20, DiskDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := serve(t, agent.Options{WorkDir: dir, Secret: secret, Grace: 200 * time.Millisecond, Limits: w})
	ctx := context.Background()
	start := time.Now()
	res, err := c.Exec(ctx, "head -c 16M /dev/zero > big; sleep 20", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 137 || !strings.Contains(res.Message, "the sandbox's disk limit (8 MiB) was reached: the work tree's changes took 16") ||
		!strings.HasSuffix(strings.Split(res.Message, ";")[1], "the command was killed") || time.Since(start) > 10*time.Second {
		t.Errorf("past the disk limit: exit %d after %s, %q", res.ExitCode, time.Since(start), res.Message)
	}
	if res, _ := c.Exec(ctx, "ls big", time.Minute); res.ExitCode != 0 || !strings.Contains(res.Message, "the sandbox's disk limit (8 MiB) was exceeded") {
		t.Errorf("still over: %+v", res)
	}
	if res, _ := c.Exec(ctx, "rm big; head -c 1M /dev/zero > small", time.Minute); res.ExitCode != 0 || res.Message != "" {
		t.Errorf("back under: %+v", res)
	}
}
