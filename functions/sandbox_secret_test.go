package functions

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// TestNoSandboxSecretInDataDirOrLog attacks the sandbox's secret from both sides: the commands
// of the session read every environment and command line they can see, and then the whole
// data dir (the SQLite event log and read models, the sandboxes' directories, the logs) and
// every event of the log are searched for the secret. It is nowhere.
func TestNoSandboxSecretInDataDirOrLog(t *testing.T) {
	dataDir := t.TempDir()
	rt, err := local.New(local.Options{DataDir: dataDir, Binary: sandboxBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Mode() != local.Namespaces {
		if ciRun() {
			t.Fatal("namespaces are required under CI")
		}
		t.Skip("no namespaces here: " + rt.Describe())
	}
	h := newSessionHarness(t, dataDir, stopAtEnd(t, rt), nil)
	h.addSample(events.Environment{Archive: sampleArchive(t), WorkDir: "/workspace/repo"})
	h.credit("mallory", 100)
	sid := h.openSession("mallory")

	// The secret the sandbox's agent checks, as the runtime was given it.
	tr := h.a.Sandboxes.(*trackingRuntime)
	tr.mu.Lock()
	secret := tr.started[0].Secret
	tr.mu.Unlock()
	if len(secret) < 32 {
		t.Fatalf("secret %q", secret)
	}
	s, _, err := loadSession(context.Background(), h.a, sid)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.a.SandboxInfo(sid, s.Sandbox).Secret; got != secret {
		t.Fatal("the secret derived from the ready event is not the one the sandbox was given")
	}

	it := h.run("mallory", sid, `cat /proc/1/environ; echo; env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do echo "== $f"; tr '\0' ' ' < "$f"; echo; done`, 60)
	if it.ExitCode == nil || it.Stdout == nil || !strings.Contains(*it.Stdout, "== /proc/1/cmdline") {
		t.Fatalf("the command did not run as planned: %+v", it)
	}
	out := *it.Stdout + *it.Stderr
	if strings.Contains(out, secret) {
		t.Fatal("a command of the session read its sandbox's secret")
	}

	// Every event of the log, as every consumer receives it.
	n := 0
	if err := h.a.Events.Scan(context.Background(), "", func(e events.Envelope) error {
		n++
		if bytes.Contains(e.Data, []byte(secret)) {
			t.Errorf("event %s (%s) holds the sandbox's secret", e.ID, e.Type)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no events scanned")
	}
	// Every file of the data dir; the search finds what is there (the session's id).
	found := searchDir(t, dataDir, secret, sid)
	if len(found[sid]) == 0 {
		t.Fatal("the search of the data dir does not find the session's id: it searches nothing")
	}
	if files := found[secret]; len(files) > 0 {
		t.Fatalf("the sandbox's secret is in %v", files)
	}
}

// searchDir lists, for each of words, the files under dir that hold it.
func searchDir(t *testing.T, dir string, words ...string) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Logf("search %s: %v", path, err)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("search %s: %v", path, err)
			return nil
		}
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				found[w] = append(found[w], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
