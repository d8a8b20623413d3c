package runtimes_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/cloudrun/fakerun"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/runtimes"
)

func TestFromConfig(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.SandboxIsolation = local.Process
	rt, desc, err := runtimes.FromConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.(*local.Runtime); !ok || !strings.Contains(desc, "plain processes") {
		t.Errorf("local: %T %q", rt, desc)
	}
	// The default limits, or why those that need control groups are off.
	if !strings.Contains(desc, "4096 open files") || (!strings.Contains(desc, "4 GiB of memory, 2 CPUs") && !strings.Contains(desc, "no memory, CPU or process limits: ")) {
		t.Errorf("limits: %q", desc)
	}

	fake := fakerun.New(t)
	fake.PollsUntilDone = 0
	cfg.Runtime, cfg.CloudRunAdminEndpoint, cfg.CloudRunInvoker, cfg.Project = "cloudrun", fake.URL, "api@p.iam.gserviceaccount.com", "p"
	rt, desc, err = runtimes.FromConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := rt.Start(ctx, sandbox.Spec{SessionID: "sess_1", Env: sandbox.Environment{Image: "img", WorkDir: "/w"}})
	if err != nil {
		t.Fatalf("cloudrun against the fake (%s): %v", desc, err)
	}
	if res, err := rt.Client(info).Exec(ctx, "echo ok", 5*time.Second); err != nil || res.Stdout != "ok\n" {
		t.Errorf("exec: %+v %v", res, err)
	}
	if err := rt.Stop(ctx, info); err != nil {
		t.Error(err)
	}

	cfg.Runtime = "docker"
	if _, _, err := runtimes.FromConfig(ctx, cfg); err == nil {
		t.Error("unknown runtime accepted")
	}
	cfg.Runtime, cfg.CloudRunInvoker = "cloudrun", ""
	if _, _, err := runtimes.FromConfig(ctx, cfg); err == nil {
		t.Error("cloudrun without an invoker accepted")
	}
}

// TestSandboxShareFromConfig: the operator's list of shared directories reaches the runtime, and
// one that would show sandboxes the data dir is refused.
func TestSandboxShareFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.SandboxIsolation, cfg.SandboxShare = local.Auto, "/usr, /bin"
	_, desc, err := runtimes.FromConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(desc, "namespaces") && !strings.Contains(desc, "the host's /usr, /bin read-only") {
		t.Errorf("shares: %q", desc)
	}
	cfg.SandboxShare = "/usr," + cfg.DataDir
	if _, _, err := runtimes.FromConfig(context.Background(), cfg); err == nil {
		t.Error("a share that holds the data dir was accepted")
	}
}
