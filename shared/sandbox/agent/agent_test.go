package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/agent"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

const secret = "s3cret-for-tests"

// start serves a fresh agent over HTTP and returns its client and work dir.
func start(t *testing.T) (*sandbox.AgentClient, string) {
	t.Helper()
	dir := t.TempDir()
	return serve(t, agent.Options{WorkDir: dir, Secret: secret, Grace: 200 * time.Millisecond}), dir
}

// serve serves an agent with opts over HTTP for the test.
func serve(t *testing.T, opts agent.Options) *sandbox.AgentClient {
	t.Helper()
	srv, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c, err := sandbox.NewClient(sandbox.Info{URL: ts.URL, Secret: opts.Secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSecretIsChecked(t *testing.T) {
	_, dir := start(t)
	srv, _ := agent.New(agent.Options{WorkDir: dir, Secret: secret})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, s := range []string{"", "wrong", secret + "x"} {
		c, _ := sandbox.NewClient(sandbox.Info{URL: ts.URL, Secret: s}, nil)
		if _, err := c.Exec(context.Background(), "true", time.Second); !errors.Is(err, sandbox.ErrUnreachable) {
			t.Errorf("secret %q: err = %v, want ErrUnreachable", s, err)
		}
	}
	req, _ := http.NewRequest("GET", ts.URL+sandbox.PathHealth, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("health without secret: %d, want 401", resp.StatusCode)
	}
	if _, err := agent.New(agent.Options{WorkDir: dir}); err == nil {
		t.Error("an agent without a secret started")
	}
}

func TestExec(t *testing.T) {
	c, dir := start(t)
	ctx := context.Background()
	cases := []struct {
		cmd            string
		exit           int
		stdout, stderr string
	}{
		{"echo hi", 0, "hi\n", ""},
		{"exit 3", 3, "", ""},
		{"echo oops >&2; false", 1, "", "oops\n"},
		{"pwd", 0, dir + "\n", ""},
		{"kill -9 $$", 137, "", ""},
		{"printf 'a\\nb'", 0, "a\nb", ""},
		{"cat", 0, "", ""}, // stdin is empty, not the agent's
	}
	for _, tc := range cases {
		res, err := c.Exec(ctx, tc.cmd, 10*time.Second)
		if err != nil {
			t.Fatalf("%q: %v", tc.cmd, err)
		}
		if res.ExitCode != tc.exit || res.Stdout != tc.stdout || res.Stderr != tc.stderr || res.TimedOut || res.Message != "" {
			t.Errorf("%q: got exit %d stdout %q stderr %q timed out %v message %q; want %d %q %q",
				tc.cmd, res.ExitCode, res.Stdout, res.Stderr, res.TimedOut, res.Message, tc.exit, tc.stdout, tc.stderr)
		}
	}
	res, err := c.Exec(ctx, "echo $"+sandbox.SecretEnv, time.Second)
	if err != nil || strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("commands see the secret variable: %q %v", res.Stdout, err)
	}
}

func TestExecTimeout(t *testing.T) {
	c, _ := start(t)
	t0 := time.Now()
	res, err := c.Exec(context.Background(), "echo started; sleep 30", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Errorf("a 300 ms timeout took %s", el)
	}
	if !res.TimedOut || res.ExitCode != agent.TimeoutExitCode || !strings.Contains(res.Message, "timed out") || res.Stdout != "started\n" {
		t.Errorf("got %+v", res)
	}
}

// A grandchild that ignores SIGTERM is still killed at the timeout, and nothing is left behind.
func TestExecTimeoutKillsGrandchildIgnoringTERM(t *testing.T) {
	c, dir := start(t)
	cmd := `bash -c 'trap "" TERM; echo $$ > grandchild.pid; exec sleep 1000' & sleep 1000; wait`
	t0 := time.Now()
	res, err := c.Exec(context.Background(), cmd, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Fatalf("not timed out: %+v", res)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("took %s", el)
	}
	b, err := os.ReadFile(filepath.Join(dir, "grandchild.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !sandboxtest.WaitGone(pid, 2*time.Second) {
		t.Fatalf("grandchild %d (ignoring SIGTERM) survived the timeout", pid)
	}
	if left := sandboxtest.ProcessesIn(dir); len(left) > 0 {
		t.Fatalf("processes left in the work dir: %v", left)
	}
}

func TestExecOutputCaps(t *testing.T) {
	c, _ := start(t)
	res, err := c.Exec(context.Background(), "head -c 3000000 /dev/zero | tr '\\0' a; head -c 1100000 /dev/zero | tr '\\0' b >&2; exit 4", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != sandbox.OutputLimit || len(res.Stderr) != sandbox.OutputLimit || res.ExitCode != 4 {
		t.Fatalf("stdout %d stderr %d exit %d", len(res.Stdout), len(res.Stderr), res.ExitCode)
	}
	for _, want := range []string{"stdout truncated to 1048576 bytes (1951424 bytes dropped)", "stderr truncated to 1048576 bytes (51424 bytes dropped)"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("message %q lacks %q", res.Message, want)
		}
	}
}

// A background process that keeps stdout open does not hold the command past its end, what the
// command wrote before it ended is all there, and the background process may go on writing
// without dying of a closed pipe.
func TestExecBackgroundProcessDoesNotBlock(t *testing.T) {
	c, dir := start(t)
	t0 := time.Now()
	res, err := c.Exec(context.Background(), "(sleep 1; echo late; echo alive > bg.done) & head -c 100000 /dev/zero | tr '\\0' a; echo done", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 3*time.Second || res.Stdout != strings.Repeat("a", 100000)+"done\n" || res.ExitCode != 0 ||
		!strings.Contains(res.Message, "background process") {
		t.Fatalf("took %s, got exit %d, %d bytes of stdout, message %q", el, res.ExitCode, len(res.Stdout), res.Message)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, "bg.done")); err == nil && string(b) == "alive\n" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the background process died writing to its inherited stdout")
}

func TestConcurrentExecs(t *testing.T) {
	c, _ := start(t)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Exec(context.Background(), fmt.Sprintf("sleep 0.2; echo %d; echo e%d >&2", i, i), 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			if res.Stdout != fmt.Sprintf("%d\n", i) || res.Stderr != fmt.Sprintf("e%d\n", i) || res.ExitCode != 0 {
				errs <- fmt.Errorf("exec %d got %+v", i, res)
			}
		}()
	}
	t0 := time.Now()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// They ran side by side, not one after the other (64 x 0.2 s = 12.8 s).
	if el := time.Since(t0); el > 8*time.Second {
		t.Errorf("64 concurrent execs of 0.2 s took %s", el)
	}
}

func TestStrReplace(t *testing.T) {
	c, dir := start(t)
	ctx := context.Background()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode)
	}
	write("a.txt", "alpha beta gamma\n", 0o755)
	write("twice.txt", "x x\n", 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	cases := []struct {
		path, old, new string
		ok             bool
		msg            string
	}{
		{"a.txt", "beta", "BETA", true, "replaced 1 occurrence"},
		{"a.txt", "beta", "BETA", false, "not found"},
		{"twice.txt", "x", "y", false, "occurs 2 times"},
		{"missing.txt", "a", "b", false, "no such file"},
		{"adir", "a", "b", false, "is a directory"},
		{"a.txt", "", "b", false, "empty"},
		{filepath.Join(dir, "a.txt"), "gamma", "delta", true, "replaced"},
	}
	for _, tc := range cases {
		ok, msg, err := c.StrReplace(ctx, tc.path, tc.old, tc.new)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if ok != tc.ok || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %q->%q: ok=%v msg=%q; want ok=%v msg containing %q", tc.path, tc.old, tc.new, ok, msg, tc.ok, tc.msg)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "a.txt"))
	if string(b) != "alpha BETA delta\n" {
		t.Errorf("a.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "twice.txt")); string(b) != "x x\n" {
		t.Errorf("a refused replacement changed the file: %q", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, "a.txt")); st.Mode().Perm() != 0o755 {
		t.Errorf("mode after replace: %v", st.Mode())
	}
}

func TestUpload(t *testing.T) {
	c, dir := start(t)
	ctx := context.Background()
	n, err := c.Upload(ctx, "deep/er/script.sh", []byte("#!/bin/sh\necho ran\n"), true)
	if err != nil || n != 19 {
		t.Fatalf("upload: %d %v", n, err)
	}
	res, _ := c.Exec(ctx, "./deep/er/script.sh", 5*time.Second)
	if res.Stdout != "ran\n" {
		t.Errorf("uploaded executable: %+v", res)
	}
	st, _ := os.Stat(filepath.Join(dir, "deep/er/script.sh"))
	if st.Mode().Perm() != 0o755 {
		t.Errorf("executable upload mode %v", st.Mode())
	}
	// Overwrite, not executable: content replaced.
	if _, err := c.Upload(ctx, "deep/er/script.sh", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "deep/er/script.sh")); string(b) != "x" {
		t.Errorf("overwrite: %q", b)
	}
	// Plain file, absolute path, empty content.
	abs := filepath.Join(t.TempDir(), "new", "empty.txt")
	if n, err := c.Upload(ctx, abs, nil, false); err != nil || n != 0 {
		t.Fatalf("absolute upload: %d %v", n, err)
	}
	if st, err := os.Stat(abs); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("absolute upload: %v %v", st, err)
	}
	// Binary content survives untouched.
	bin := []byte{0, 1, 2, 255, '\n', 0}
	if _, err := c.Upload(ctx, "bin.dat", bin, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin.dat")); string(b) != string(bin) {
		t.Errorf("binary upload: %v", b)
	}
	// Onto a directory, or under a file: rejected with the reason, not unreachable.
	for _, p := range []string{"deep", "bin.dat/sub.txt"} {
		if _, err := c.Upload(ctx, p, []byte("x"), false); !errors.Is(err, sandbox.ErrRejected) {
			t.Errorf("upload onto %s: %v, want ErrRejected", p, err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	c, err := sandbox.NewClient(sandbox.Info{URL: "unix://" + filepath.Join(t.TempDir(), "none.sock"), Secret: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(context.Background(), "true", time.Second); !errors.Is(err, sandbox.ErrUnreachable) {
		t.Errorf("err = %v", err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer ts.Close()
	c, _ = sandbox.NewClient(sandbox.Info{URL: ts.URL, Secret: "x"}, nil)
	if _, err := c.Exec(context.Background(), "true", time.Second); !errors.Is(err, sandbox.ErrUnreachable) {
		t.Errorf("nonsense answer: err = %v", err)
	}
	if _, err := sandbox.NewClient(sandbox.Info{URL: "ftp://x"}, nil); err == nil {
		t.Error("ftp URL accepted")
	}
}
