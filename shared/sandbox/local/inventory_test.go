package local_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// TestListAndReclaim: the runtime lists a session's sandbox and an oracle left behind (its
// process still running, as after a verifier that lost its caller), and reclaiming each ends
// its processes and removes its directory.
func TestListAndReclaim(t *testing.T) {
	data := t.TempDir()
	r := newRuntime(t, data, local.Process)
	ctx := context.Background()
	info := started(t, r, "ses_listed", archive(t))

	odir := filepath.Join(data, "oracles", "ses_gone-4821")
	if err := os.MkdirAll(odir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(odir, "request.json"), []byte("{}"), 0o600)
	// An oracle's process carries its sandbox's mark, whatever its working directory.
	sleeper := exec.Command("sleep", "600")
	sleeper.Env = []string{local.Mark(odir)}
	sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	t.Cleanup(func() { sleeper.Process.Kill() })

	listed, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(listed, func(l sandbox.Listed) bool { return l.SessionID == "ses_listed" && !l.Oracle })
	j := slices.IndexFunc(listed, func(l sandbox.Listed) bool { return l.SessionID == "ses_gone" && l.Oracle })
	if len(listed) != 2 || i < 0 || j < 0 || listed[i].CreatedAt.IsZero() || listed[j].CreatedAt.IsZero() {
		t.Fatalf("listed %+v", listed)
	}

	if err := r.Reclaim(ctx, listed[j]); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err == nil {
		t.Error("the oracle's process was not killed")
	}
	if _, err := os.Stat(odir); !os.IsNotExist(err) {
		t.Errorf("the oracle's directory is still there: %v", err)
	}

	if err := r.Reclaim(ctx, listed[i]); err != nil {
		t.Fatal(err)
	}
	if r.Alive(ctx, info) {
		t.Error("the reclaimed sandbox still answers")
	}
	if listed, err := r.List(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("after reclaiming: %+v, %v", listed, err)
	}
	// Reclaiming again, or a name that is not an oracle of that session, changes nothing.
	if err := r.Reclaim(ctx, listed[i]); err != nil {
		t.Errorf("reclaim twice: %v", err)
	}
	if err := r.Reclaim(ctx, sandbox.Listed{SessionID: "ses_a", Oracle: true, Name: "../ses_a-1"}); err == nil {
		t.Error("a path outside the oracles' directory was accepted")
	}
}
