package local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

var binary string

func TestMain(m *testing.M) {
	if bin := os.Getenv("EPHEMERAL_HELPER_BINARY"); bin != "" {
		binary = bin // the helper process reuses its parent's build
		os.Exit(m.Run())
	}
	root, _ := filepath.Abs("../../..")
	bin, err := sandboxtest.Binary(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	os.RemoveAll(filepath.Dir(bin))
	os.Exit(code)
}

// archive packs a small git repository at its base commit, the way the catalog stores a
// sample's environment, and returns its path.
func archive(t testing.TB) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(filepath.Join(repo, "pkg"), 0o755)
	os.WriteFile(filepath.Join(repo, "pkg", "hello.txt"), []byte("hello from the sample\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)
	os.Symlink("pkg/hello.txt", filepath.Join(repo, "link.txt"))
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "env.tar.gz")
	if b, err := exec.Command("tar", "-C", repo, "-czf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	return out
}

func newRuntime(t testing.TB, data, isolation string) *local.Runtime {
	t.Helper()
	r, err := local.New(local.Options{DataDir: data, Binary: binary, Isolation: isolation, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func modes(t *testing.T) []string {
	r := newRuntime(t, t.TempDir(), local.Auto)
	t.Logf("isolation here: %s", r.Describe())
	if r.Mode() == local.Namespaces {
		return []string{local.Namespaces, local.Process}
	}
	return []string{local.Process}
}

func spec(id, archive string) sandbox.Spec {
	return sandbox.Spec{SessionID: id, UserID: "u1", Env: sandbox.Environment{Archive: archive, WorkDir: "/workspace/repo"}}
}

// started starts the sandbox of session id on archive, and stops it when the test ends.
func started(t *testing.T, r *local.Runtime, id, archive string) sandbox.Info {
	t.Helper()
	info, err := r.Start(context.Background(), spec(id, archive))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background(), info) })
	return info
}

func mustExec(t *testing.T, c sandbox.Client, cmd string) sandbox.ExecResult {
	t.Helper()
	return execFor(t, c, cmd, 10*time.Second)
}

func TestStartExecStop(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			r := newRuntime(t, data, mode)
			ctx := context.Background()
			info, err := r.Start(ctx, spec("ses_start", arch))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(data, "sandboxes", "ses_start")
			wantWorkDir := filepath.Join(dir, "repo")
			if mode == local.Namespaces {
				wantWorkDir = "/workspace/repo" // the same in every sandbox of the sample
			}
			if info.WorkDir != wantWorkDir || info.Location != "local" || info.Secret == "" || info.PID == 0 ||
				!strings.HasPrefix(info.URL, "unix://") || info.CreatedAt.IsZero() {
				t.Fatalf("info %+v", info)
			}
			if _, err := os.Stat(filepath.Join(dir, "secret")); !os.IsNotExist(err) {
				t.Errorf("the secret file is still there: %v", err)
			}
			c := r.Client(info)
			if res := mustExec(t, c, "pwd; cat pkg/hello.txt link.txt; ./run.sh; git status --porcelain | wc -l"); res.Stdout != info.WorkDir+"\nhello from the sample\nhello from the sample\nran\n0\n" {
				t.Errorf("in the sandbox: %+v", res)
			}
			if res := mustExec(t, c, "env"); strings.Contains(res.Stdout, "SECRET") || !strings.Contains(res.Stdout, "CODESET_SANDBOX=1") {
				t.Errorf("sandbox environment: %s", res.Stdout)
			}
			if mode == local.Namespaces {
				// Its own pid namespace (the bash init is pid 1), its own network with lo up.
				res := mustExec(t, c, "cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/net")
				hostNet, _ := os.Readlink("/proc/self/ns/net")
				if !strings.Contains(res.Stdout, "sandbox-init") || strings.Contains(res.Stdout, hostNet) {
					t.Errorf("namespaces: %q (host net %s)", res.Stdout, hostNet)
				}
				// A root of its own: none of the host's but its system directories, /tmp and /dev
				// its own, and root in it cannot mount (and so cannot undo any of that).
				os.WriteFile(filepath.Join(data, "codeset.db"), []byte("the server's data"), 0o600)
				hostTmp, _ := os.CreateTemp("", "host-only-")
				hostTmp.Close()
				defer os.Remove(hostTmp.Name())
				probe := fmt.Sprintf("ls / | tr '\n' ' '; echo; test -e %s && echo data visible; test -e %s && echo host tmp visible; ls /dev | tr '\n' ' '; echo; "+
					"mount -t tmpfs x /mnt 2>/dev/null && echo mounted; cat <(echo procsubst) >/dev/null && echo ok; echo x > /tmp/mine && cat /tmp/mine; "+
					"grep CapBnd /proc/self/status; touch /usr/x 2>/dev/null && echo host writable; touch /x 2>/dev/null && echo root writable; touch $HOME/.sandbox-probe && echo home ok",
					data, hostTmp.Name())
				if res := mustExec(t, c, probe); res.Stdout != "bin dev etc home lib lib64 proc run sbin tmp usr var workspace \nfd full null ptmx pts random shm stderr stdin stdout tty urandom zero \nok\nx\nCapBnd:\t00000000a80425fb\nhome ok\n" {
					t.Errorf("confinement: %q %q", res.Stdout, res.Stderr)
				}
				if home, _ := os.UserHomeDir(); home != "" {
					if _, err := os.Stat(filepath.Join(home, ".sandbox-probe")); err == nil {
						os.Remove(filepath.Join(home, ".sandbox-probe"))
						t.Error("a write to HOME in the sandbox reached the host")
					}
				}
				if _, err := exec.LookPath("python3"); err == nil {
					res := mustExec(t, c, `python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); socket.create_connection(s.getsockname()); print('lo up')"`)
					if res.Stdout != "lo up\n" {
						t.Errorf("loopback in the sandbox: %+v", res)
					}
				}
			}
			// Leave processes behind on purpose: a background job, one that ignores TERM in a
			// session of its own, and a double-forked daemon.
			mustExec(t, c, "sleep 1000 & setsid bash -c 'trap \"\" TERM; exec sleep 1001' & (bash -c 'sleep 1002 &' &) ; echo ok")
			time.Sleep(100 * time.Millisecond)
			if left := sandboxtest.ProcessesIn(dir); len(left) < 4 {
				t.Fatalf("expected the agent and the sleeps in %s, found %v", dir, left)
			}
			if err := r.Stop(ctx, info); err != nil {
				t.Fatal(err)
			}
			if left := sandboxtest.ProcessesIn(dir); len(left) > 0 {
				t.Fatalf("processes left after Stop: %v", left)
			}
			if sandboxtest.Alive(info.PID) {
				t.Errorf("agent %d still alive", info.PID)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("sandbox dir still there: %v", err)
			}
			if _, err := c.Exec(ctx, "true", time.Second); err == nil {
				t.Error("exec after Stop worked")
			}
			if err := r.Stop(ctx, info); err != nil {
				t.Errorf("stopping a stopped sandbox: %v", err)
			}
		})
	}
}

// After a restart of the server, a new runtime that never started the sandbox finds it alive,
// drives it and ends it.
func TestReattach(t *testing.T) {
	arch := archive(t)
	data := t.TempDir()
	first := newRuntime(t, data, local.Auto)
	info, err := first.Start(context.Background(), spec("ses_reattach", arch))
	if err != nil {
		t.Fatal(err)
	}
	second := newRuntime(t, data, local.Auto)
	if !second.Alive(context.Background(), info) {
		t.Fatal("a running sandbox is not alive to a new runtime")
	}
	if res := mustExec(t, second.Client(info), "cat pkg/hello.txt"); res.Stdout != "hello from the sample\n" {
		t.Errorf("exec after reattach: %+v", res)
	}
	wrong := info
	wrong.PID = os.Getpid()
	if second.Alive(context.Background(), wrong) {
		t.Error("a sandbox with somebody else's pid is alive")
	}
	if err := second.Stop(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	if second.Alive(context.Background(), info) || first.Alive(context.Background(), info) {
		t.Error("alive after Stop")
	}
	if left := sandboxtest.ProcessesIn(filepath.Join(data, "sandboxes", "ses_reattach")); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

// A redelivered start of the same session replaces the first sandbox instead of leaking it.
func TestStartAgainReplaces(t *testing.T) {
	arch := archive(t)
	r := newRuntime(t, t.TempDir(), local.Auto)
	ctx := context.Background()
	one, err := r.Start(ctx, spec("ses_twice", arch))
	if err != nil {
		t.Fatal(err)
	}
	two := started(t, r, "ses_twice", arch)
	if !sandboxtest.WaitGone(one.PID, 5*time.Second) {
		t.Errorf("the first sandbox's agent %d still runs", one.PID)
	}
	// A start whose Info was lost is stopped by its session id alone.
	lost, err := r.Start(ctx, spec("ses_lost", arch))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, sandbox.Info{Name: "ses_lost"}); err != nil {
		t.Fatal(err)
	}
	if !sandboxtest.WaitGone(lost.PID, 5*time.Second) {
		t.Errorf("sandbox stopped by session id still runs")
	}
	if mustExec(t, r.Client(two), "echo hi").Stdout != "hi\n" {
		t.Error("second sandbox does not answer")
	}
}

func TestStartFailures(t *testing.T) {
	data := t.TempDir()
	r := newRuntime(t, data, local.Auto)
	ctx := context.Background()
	if _, err := r.Start(ctx, spec("ses_noarchive", filepath.Join(data, "missing.tar.gz"))); err == nil {
		t.Error("a missing archive started")
	}
	bad := filepath.Join(data, "bad.tar.gz")
	os.WriteFile(bad, []byte("not gzip"), 0o644)
	if _, err := r.Start(ctx, spec("ses_bad", bad)); err == nil {
		t.Error("a corrupt archive started")
	}
	if _, err := r.Start(ctx, spec("../escape", "")); err == nil {
		t.Error("a session id with a path in it started")
	}
	for _, id := range []string{"ses_noarchive", "ses_bad"} {
		if _, err := os.Stat(filepath.Join(data, "sandboxes", id)); !os.IsNotExist(err) {
			t.Errorf("%s: directory left after a failed start", id)
		}
	}
	broken, err := local.New(local.Options{DataDir: data, Binary: "/bin/false", Isolation: local.Process, StartTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broken.Start(ctx, spec("ses_dies", "")); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("an agent that dies at start: %v", err)
	}
}

// Many sandboxes at once, each answering exec.
func TestManySandboxes(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 5
	}
	arch := archive(t)
	r := newRuntime(t, t.TempDir(), local.Auto)
	ctx := context.Background()
	infos := make([]sandbox.Info, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := r.Start(ctx, spec(fmt.Sprintf("ses_many_%d", i), arch))
			if err != nil {
				errs <- err
				return
			}
			infos[i] = info
			res, err := r.Client(info).Exec(ctx, fmt.Sprintf("echo %d", i), 10*time.Second)
			if err != nil || res.Stdout != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("sandbox %d: %+v %v", i, res, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, info := range infos {
		if info.Name != "" {
			if err := r.Stop(ctx, info); err != nil {
				t.Error(err)
			}
		}
	}
}

// Two sandboxes of one sample share nothing: what one changes, the other never sees, and a
// sandbox started later still gets the sample as it was.
func TestSandboxesOfOneSampleAreIndependent(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			r := newRuntime(t, t.TempDir(), mode)
			ctx := context.Background()
			a := started(t, r, "ses_a", arch)
			b := started(t, r, "ses_b", arch)
			mustExec(t, r.Client(a), "echo changed > pkg/hello.txt; echo new > new.txt; rm run.sh; git add -A && git -c user.name=a -c user.email=a@b commit -qm a")
			if res := mustExec(t, r.Client(b), "cat pkg/hello.txt; ls; git log --oneline | wc -l"); res.Stdout != "hello from the sample\nlink.txt\npkg\nrun.sh\n1\n" {
				t.Errorf("sandbox b sees a's changes: %q", res.Stdout)
			}
			if err := r.Stop(ctx, a); err != nil {
				t.Fatal(err)
			}
			c := started(t, r, "ses_c", arch)
			if res := mustExec(t, r.Client(c), "cat pkg/hello.txt; ls"); res.Stdout != "hello from the sample\nlink.txt\npkg\nrun.sh\n" {
				t.Errorf("a later sandbox sees a stopped one's changes: %q", res.Stdout)
			}
		})
	}
}

// A sandbox whose first process was killed behind the runtime's back is not alive, and Stop
// still leaves nothing of it running.
func TestFirstProcessKilled(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			r := newRuntime(t, data, mode)
			ctx := context.Background()
			info, err := r.Start(ctx, spec("ses_killed", arch))
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, r.Client(info), "sleep 1000 & echo started")
			sandboxtest.Kill(info.PID)
			if !sandboxtest.WaitGone(info.PID, 5*time.Second) {
				t.Fatal("first process survived SIGKILL")
			}
			deadline := time.Now().Add(5 * time.Second)
			for r.Alive(ctx, info) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if r.Alive(ctx, info) {
				t.Error("alive without its first process")
			}
			if err := r.Stop(ctx, info); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(data, "sandboxes", "ses_killed")
			time.Sleep(50 * time.Millisecond)
			if left := sandboxtest.ProcessesIn(dir); len(left) > 0 {
				t.Errorf("processes left: %v", left)
			}
		})
	}
}

// An ephemeral sandbox dies with the process that started it: a test binary killed midway
// leaves nothing behind. The child is this test binary, run again as the helper below.
func TestEphemeralDiesWithItsStarter(t *testing.T) {
	data := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEphemeralHelper$")
	cmd.Env = append(os.Environ(), "EPHEMERAL_HELPER_DATA="+data, "EPHEMERAL_HELPER_ARCHIVE="+archive(t),
		"EPHEMERAL_HELPER_BINARY="+binary)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscanf(out, "PID %d\n", &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	if !sandboxtest.Alive(pid) {
		t.Fatal("the helper's sandbox is not running")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !sandboxtest.WaitGone(pid, 5*time.Second) {
		sandboxtest.Kill(pid)
		t.Fatal("an ephemeral sandbox outlived its starter")
	}
	// The namespace's other processes are killed by the kernel once its first one is gone.
	if left := sandboxtest.WaitEmpty(filepath.Join(data, "sandboxes"), 5*time.Second); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

func TestEphemeralHelper(t *testing.T) {
	data := os.Getenv("EPHEMERAL_HELPER_DATA")
	if data == "" {
		t.Skip("run by TestEphemeralDiesWithItsStarter")
	}
	r := newRuntime(t, data, local.Auto)
	info, err := r.Start(context.Background(), spec("ses_ephemeral", os.Getenv("EPHEMERAL_HELPER_ARCHIVE")))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, r.Client(info), "sleep 1000 & echo")
	fmt.Printf("PID %d\n", info.PID)
	time.Sleep(time.Minute) // killed by the parent long before
}

// A sandbox its server never came back to stop ends by itself OrphanGrace after its session's
// expiry, with every process it started, in both isolations.
func TestOrphanedSandboxEndsAfterItsExpiry(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			r := newRuntime(t, data, mode)
			ctx := context.Background()
			sp := spec("ses_orphan", arch)
			sp.ExpiresAt = time.Now().Add(-local.OrphanGrace + 2*time.Second) // the sandbox has 2 s left
			info, err := r.Start(ctx, sp)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop(ctx, info)
			dir := filepath.Join(data, "sandboxes", "ses_orphan")
			mustExec(t, r.Client(info), "sleep 1000 > /dev/null 2>&1 & echo started")
			if len(sandboxtest.ProcessesIn(dir)) == 0 {
				t.Fatal("no process of the sandbox found before its deadline")
			}
			if !sandboxtest.WaitGone(info.PID, 15*time.Second) {
				t.Fatal("the sandbox still runs well past its --stop-at")
			}
			if left := sandboxtest.WaitEmpty(dir, 5*time.Second); len(left) > 0 {
				t.Errorf("processes left after the sandbox ended: %v", left)
			}
		})
	}
}
