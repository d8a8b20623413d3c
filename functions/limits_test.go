package functions

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/runtimes"
)

// Through the API, with the local runtime built from the configuration as `codeset serve`
// builds it: an interaction carries what its command used, and a command that hits one of its
// sandbox's limits says which.
func TestInteractionUsageAndLimits(t *testing.T) {
	dataDir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.SandboxBinary = dataDir, sandboxBinary(t)
	cfg.SandboxMemory, cfg.SandboxPids = 256<<20, 200
	rt, how, err := runtimes.FromConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.(*local.Runtime).Limited(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("control groups must work in CI: %v", err)
		}
		t.Skipf("no control groups for sandboxes here: %v", err)
	}
	t.Log(how)
	h := newSessionHarness(t, dataDir, stopAtEnd(t, rt), nil)
	h.addSample(events.Environment{Archive: sampleArchive(t), WorkDir: "/workspace/repo"})
	h.credit("dora", 100)
	sid := h.openSession("dora")

	it := h.run("dora", sid, `head -c 100M /dev/zero | tail >/dev/null; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done`, 60)
	if it.Stdout == nil || *it.Stdout != "done\n" || it.Usage == nil || it.Usage.PeakMemoryBytes < 100<<20 || it.Usage.CPUSeconds <= 0 {
		t.Fatalf("a command that uses memory and CPU: %+v (usage %+v)", it, it.Usage)
	}
	// The raw answer has the extension's fields under their documented names (?wait: the read
	// model may not have caught up with the result yet).
	var raw map[string]any
	h.expect(http.StatusOK, "dora", "GET", "/sessions/"+sid+"/interactions/"+it.InteractionID+"?wait=30", nil, &raw)
	usage, _ := raw["usage"].(map[string]any)
	if _, ok := usage["peak_memory_bytes"].(float64); !ok {
		t.Errorf("usage in the interaction: %v", raw["usage"])
	}
	if _, ok := usage["cpu_seconds"].(float64); !ok {
		t.Errorf("usage in the interaction: %v", raw["usage"])
	}

	hog := h.run("dora", sid, "head -c 2G /dev/zero | tail >/dev/null", 60)
	if hog.Success == nil || *hog.Success || hog.Message == nil ||
		!strings.Contains(*hog.Message, "the sandbox's memory limit (256 MiB) was reached: the kernel killed a process (out of memory)") {
		t.Errorf("a command past the memory limit: %+v", hog)
	}
	bomb := h.run("dora", sid, `:(){ :|:& };: ; sleep 2`, 30)
	if bomb.Message == nil || !strings.Contains(*bomb.Message, "the sandbox's process limit (200) was reached: fork failed") {
		t.Errorf("a fork bomb: %+v", bomb)
	}
}
