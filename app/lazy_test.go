package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
	"github.com/codeset/codeset/shared/config"
)

// TestSandboxRuntimeOpensOnFirstUse: Open does not open the sandbox runtime, so an App whose
// runtime cannot open yet still opens and serves what needs no sandbox; the first use meets the
// error, and once its cause is gone the next use opens it (the failure is not kept).
func TestSandboxRuntimeOpensOnFirstUse(t *testing.T) {
	data := t.TempDir()
	// A file where the local runtime makes its sandboxes' directory.
	blocker := filepath.Join(data, "sandboxes")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.NoDemo, cfg.SandboxIsolation = data, true, "process"
	a, err := Open(context.Background(), cfg, Wiring{})
	if err != nil {
		t.Fatalf("Open opened the sandbox runtime: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	if err := a.OpenAll(); err == nil {
		t.Fatal("OpenAll hid the runtime's error")
	}
	if _, err := a.Sandboxes.(*lazyRuntime).List(ctx); err == nil {
		t.Fatal("a runtime that cannot open listed its sandboxes")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if listed, err := a.Sandboxes.(*lazyRuntime).List(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("once it can open: %v, %v", listed, err)
	}
	if err := a.OpenAll(); err != nil {
		t.Fatal(err)
	}
}

// TestBlobStoreOpensOnFirstUse: the blob store's client is made by the first call that needs
// it, again after a failure, and once only after a success.
func TestBlobStoreOpensOnFirstUse(t *testing.T) {
	opens := 0
	fail := errors.New("no credentials yet")
	dir := t.TempDir()
	l := &lazyBlobs{once[blob.Store]{open: func() (blob.Store, error) {
		opens++
		if opens == 1 {
			return nil, fail
		}
		return fsblob.New(dir)
	}}}
	ctx := context.Background()
	if opens != 0 {
		t.Fatal("opened before any use")
	}
	if _, err := l.Put(ctx, bytes.NewReader([]byte("x"))); !errors.Is(err, fail) {
		t.Fatalf("first use: %v", err)
	}
	ref, err := l.Put(ctx, bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if opens != 2 {
		t.Fatalf("%d opens, want 2 (a failure, then one success kept)", opens)
	}
}
