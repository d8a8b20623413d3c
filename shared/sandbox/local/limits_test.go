package local_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

// limitedRuntime is newRuntime with limits. It skips where control groups do not work, which
// CI must not be.
func limitedRuntime(t *testing.T, data, isolation string, l local.Limits) *local.Runtime {
	t.Helper()
	r, err := local.New(local.Options{DataDir: data, Binary: binary, Isolation: isolation, Ephemeral: true, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Limited(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("control groups must work in CI: %v", err)
		}
		t.Skipf("no control groups for sandboxes here: %v", err)
	}
	t.Logf("%s", r.DescribeLimits())
	return r
}

// groupDirs are the directories of the control group of the sandbox in dir, as it recorded them.
func groupDirs(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.json"))
	if err != nil {
		t.Fatalf("the sandbox's control group record: %v", err)
	}
	var g struct {
		Name string            `json:"name"`
		V1   map[string]string `json:"v1"`
		V2   string            `json:"v2"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for ctrl, p := range g.V1 {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ctrl, p))
	}
	if g.V2 != "" {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", g.V2))
	}
	if len(dirs) == 0 {
		t.Fatalf("no control group recorded: %s", b)
	}
	return dirs
}

func expectGone(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("control group %s is still there (%v)", d, err)
		}
	}
}

// execFor runs cmd with timeout and fails the test when it could not run.
func execFor(t *testing.T, c sandbox.Client, cmd string, timeout time.Duration) sandbox.ExecResult {
	t.Helper()
	res, err := c.Exec(context.Background(), cmd, timeout)
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res
}

// A fork bomb in one sandbox hits its process limit, and the command says so; another sandbox
// keeps answering all along, and so does the bombed sandbox's agent, whose commands are in a
// group of their own (a Go program that cannot start a thread dies).
func TestForkBombHitsTheProcessLimit(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			r := limitedRuntime(t, data, mode, local.Limits{Pids: 200, Memory: 1 << 30})
			ctx := context.Background()
			bomb := started(t, r, "ses_bomb", arch)
			other := started(t, r, "ses_bystander", arch)

			done := make(chan sandbox.ExecResult, 1)
			go func() {
				res, err := r.Client(bomb).Exec(ctx, `:(){ :|:& };: ; sleep 3`, 20*time.Second)
				if err != nil {
					log, _ := os.ReadFile(filepath.Join(data, "sandboxes", "ses_bomb", "agent.log"))
					t.Errorf("the fork bomb's sandbox: %v; its log: %s", err, log)
				}
				done <- res
			}()
			// While the bomb goes off (and after), the other sandbox answers.
			answered := 0
			for bombing := true; bombing || answered < 3; answered++ {
				select {
				case res := <-done:
					bombing = false
					if !strings.Contains(res.Message, "the sandbox's process limit (200) was reached: fork failed") {
						t.Errorf("the fork bomb's result does not name the process limit: %+v", res)
					}
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				res, err := r.Client(other).Exec(cctx, "true", 10*time.Second)
				cancel()
				if err != nil || res.ExitCode != 0 {
					t.Fatalf("the other sandbox does not answer during the fork bomb: %+v %v", res, err)
				}
				if answered == 0 {
					t.Logf("the other sandbox answered in %s", time.Since(start))
				}
				time.Sleep(200 * time.Millisecond)
			}
			// The bomb still goes off in the background (its result said so: the output is held).
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					if _, err := r.Client(bomb).Exec(ctx, "sleep 1", 10*time.Second); err != nil {
						t.Errorf("the bombed sandbox's agent does not answer: %v", err)
					}
				})
			}
			wg.Wait()
			if !r.Alive(ctx, bomb) {
				t.Error("the bombed sandbox died")
			}
			if err := r.Stop(ctx, bomb); err != nil {
				t.Fatalf("stop the fork bomb's sandbox: %v", err)
			}
		})
	}
}

// A command that takes more memory than its sandbox has is killed, and says which limit it hit.
func TestMemoryHogHitsTheMemoryLimit(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			r := limitedRuntime(t, t.TempDir(), mode, local.Limits{Memory: 256 << 20, Pids: 1024})
			info := started(t, r, "ses_hog", arch)
			c := r.Client(info)
			// tail keeps the last "line", with no newline, in memory as it grows.
			res := execFor(t, c, "head -c 2G /dev/zero | tail >/dev/null", 60*time.Second)
			if res.ExitCode == 0 || !strings.Contains(res.Message, "the sandbox's memory limit (256 MiB) was reached: the kernel killed a process (out of memory)") {
				t.Errorf("the memory hog's result: exit %d, message %q, stderr %q", res.ExitCode, res.Message, res.Stderr)
			}
			// The sandbox lives on, and a command within the limit says nothing of it.
			if res := execFor(t, c, "echo fine", 10*time.Second); res.Stdout != "fine\n" || res.Message != "" {
				t.Errorf("after the memory hog: %+v", res)
			}
		})
	}
}

// A command can neither leave its sandbox's control group nor lift its limits: the control
// group file system is not in its root, and it may not mount one.
func TestCommandsCannotLeaveTheirGroup(t *testing.T) {
	r := limitedRuntime(t, t.TempDir(), local.Auto, local.Limits{Memory: 1 << 30, Pids: 1024})
	if r.Mode() != local.Namespaces {
		t.Skip("plain-process sandboxes have the host's root and its capabilities: nothing keeps a command in its group")
	}
	info := started(t, r, "ses_escape", archive(t))
	c := r.Client(info)
	group := mustExec(t, c, "grep memory /proc/self/cgroup").Stdout
	if !strings.Contains(group, "-sandbox-ses_escape") {
		t.Fatalf("a command is not in its sandbox's group: %q", group)
	}
	attempts := []string{
		"echo $$ > /sys/fs/cgroup/memory/cgroup.procs",
		"echo $$ > /sys/fs/cgroup/cgroup.procs",
		"echo $$ > /sys/fs/cgroup/pids/tasks",
		"echo max > /sys/fs/cgroup/pids/pids.max",
		"mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg && echo $$ > /tmp/cg/cgroup.procs",
		"mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2 && echo $$ > /tmp/cg2/cgroup.procs",
		"mkdir -p /tmp/sys && mount -t sysfs sysfs /tmp/sys && echo $$ > /tmp/sys/fs/cgroup/memory/cgroup.procs",
		"unshare --cgroup --mount sh -c 'mount -t cgroup -o memory cgroup /mnt && echo $$ > /mnt/cgroup.procs'",
		// The agent holds its group's counters open: no command may reach them through it.
		"ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -q cgroup",
	}
	for _, a := range attempts {
		res := mustExec(t, c, a+" && grep memory /proc/self/cgroup")
		if res.ExitCode == 0 {
			t.Errorf("%q succeeded: %q", a, res.Stdout)
		}
		t.Logf("%s: %d %s", a, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if now := mustExec(t, c, "grep memory /proc/self/cgroup").Stdout; now != group {
		t.Errorf("a command's group changed from %q to %q", group, now)
	}
}

// Each sandbox's group exists while it runs and is gone once it stops, whichever server stops
// it; an oracle's is gone once it answers; and the group of a sandbox that no longer exists is
// removed when a runtime starts.
func TestSandboxGroupsEnd(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			limits := local.Limits{Memory: 1 << 30, Pids: 1024, CPUs: 1, CPUWeight: 100}
			r := limitedRuntime(t, data, mode, limits)
			ctx := context.Background()
			sp := spec("ses_groups", arch)
			info, err := r.Start(ctx, sp)
			if err != nil {
				t.Fatal(err)
			}
			dirs := groupDirs(t, filepath.Join(data, "sandboxes", "ses_groups"))
			for _, d := range dirs {
				if _, err := os.Stat(d); err != nil {
					t.Fatalf("the running sandbox's group: %v", err)
				}
			}
			// The oracle runs in a group of its own, beside the session's.
			res, err := sandbox.Verify(ctx, r, info, sp, sandbox.VerifyRequest{Command: "grep memory /proc/self/cgroup", Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Stdout, "-oracle-ses_groups-") {
				t.Errorf("the oracle ran in %q", res.Stdout)
			}
			parent := filepath.Dir(dirs[0])
			if left, _ := filepath.Glob(filepath.Join(parent, "*-oracle-ses_groups-*")); len(left) > 0 {
				t.Errorf("the oracle's group outlived it: %v", left)
			}

			// A later server stops it.
			again := limitedRuntime(t, data, mode, limits)
			if err := again.Stop(ctx, sandbox.Info{Name: "ses_groups"}); err != nil {
				t.Fatal(err)
			}
			expectGone(t, dirs)

			// A sandbox whose directory went away with its processes leaves a group that the next
			// runtime removes.
			lost, err := r.Start(ctx, spec("ses_lost", arch))
			if err != nil {
				t.Fatal(err)
			}
			lostDir := filepath.Join(data, "sandboxes", "ses_lost")
			lostGroup := groupDirs(t, lostDir)
			sandboxtest.Kill(lost.PID)
			if !sandboxtest.WaitGone(lost.PID, 10*time.Second) {
				t.Fatal("the lost sandbox's agent does not end")
			}
			os.RemoveAll(lostDir)
			limitedRuntime(t, data, mode, limits)
			expectGone(t, lostGroup)
		})
	}
}

// A command's result says how much memory and CPU time it used, and commands have the open files
// limit, which confined ones cannot raise.
func TestUsageAndOpenFiles(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			r := limitedRuntime(t, t.TempDir(), mode, local.Limits{Memory: 1 << 30, Pids: 1024, OpenFiles: 1000})
			info := started(t, r, "ses_usage", arch)
			c := r.Client(info)
			res := execFor(t, c, `head -c 200M /dev/zero | tail >/dev/null; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`, time.Minute)
			if res.ExitCode != 0 || res.PeakMemoryBytes < 200<<20 || res.CPUTime < 100*time.Millisecond {
				t.Errorf("usage of a command that burns CPU and memory: exit %d, peak %d bytes, CPU %s (%s)", res.ExitCode, res.PeakMemoryBytes, res.CPUTime, res.Message)
			}
			t.Logf("peak %d MiB, CPU %s, wall %s", res.PeakMemoryBytes>>20, res.CPUTime, res.Duration)
			if res := execFor(t, c, "ulimit -n; ulimit -Hn", 10*time.Second); res.Stdout != "1000\n1000\n" {
				t.Errorf("open files: %q", res.Stdout)
			}
			// Without CAP_SYS_RESOURCE, which confined commands do not have, none can raise it.
			if res := execFor(t, c, "ulimit -n 5000 2>/dev/null || echo refused", 10*time.Second); mode == local.Namespaces && res.Stdout != "refused\n" {
				t.Errorf("a command raised its open files limit: %q", res.Stdout)
			}
		})
	}
}

// The private /tmp is bounded, and so is what the work tree's changes may take on disk: a
// command that grows them past the limit is killed and says why.
func TestDiskLimits(t *testing.T) {
	r := limitedRuntime(t, t.TempDir(), local.Auto, local.Limits{Memory: 1 << 30, Pids: 1024, Tmp: 32 << 20, Disk: 64 << 20})
	if r.Mode() != local.Namespaces || !strings.Contains(r.DescribeLimits(), "work-tree changes") {
		t.Skip("the disk limits need namespaces and overlays: " + r.Describe())
	}
	info := started(t, r, "ses_disk", archive(t))
	c := r.Client(info)
	if res := execFor(t, c, "head -c 48M /dev/zero > /tmp/big", 10*time.Second); res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left") {
		t.Errorf("/tmp past its size: %+v", res)
	}
	res := execFor(t, c, "head -c 100M /dev/zero > big; sleep 10", 30*time.Second)
	if res.ExitCode == 0 || !strings.Contains(res.Message, "the sandbox's disk limit (64 MiB) was reached: the work tree's changes took 100") ||
		!strings.Contains(res.Message, "the command was killed") {
		t.Errorf("work tree past the disk limit: exit %d, %q", res.ExitCode, res.Message)
	}
	// A command that does not add to the changes runs; one that removes them brings the tree
	// back under the limit.
	if res := execFor(t, c, "ls -s big", 10*time.Second); res.ExitCode != 0 || !strings.Contains(res.Message, "disk limit (64 MiB) was exceeded") {
		t.Errorf("a command over the limit that adds nothing: %+v", res)
	}
	if res := execFor(t, c, "rm big && echo ok", 10*time.Second); res.Stdout != "ok\n" || res.Message != "" {
		t.Errorf("back under the limit: %+v", res)
	}
}
