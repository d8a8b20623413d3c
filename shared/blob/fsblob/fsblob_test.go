package fsblob_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/blobtest"
	"github.com/codeset/codeset/shared/blob/fsblob"
)

func TestContract(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := fsblob.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestTamperedFile: bytes changed on disk under their digest are refused when read.
func TestTamperedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := blob.PutBytes(ctx, s, []byte("original"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ref.Hex()
	p := filepath.Join(dir, "sha256", h[:2], h)
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, []byte("tampere"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.ReadAll(ctx, s, ref); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("tampered bytes: %v, want ErrCorrupt", err)
	}
}
