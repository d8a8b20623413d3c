// Package blobtest is the contract every blob.Store adapter passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/codeset/codeset/shared/blob"
)

// Run checks the store newStore makes (a fresh, empty one per call).
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	ctx := context.Background()
	t.Run("round trip", func(t *testing.T) {
		s := newStore(t)
		for _, size := range []int{0, 1, 64 << 10, 1 << 20} {
			b := make([]byte, size)
			rand.Read(b)
			ref, err := blob.PutBytes(ctx, s, b)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Size != int64(size) || !strings.HasPrefix(ref.Digest, "sha256:") {
				t.Fatalf("ref %+v for %d bytes", ref, size)
			}
			got, err := blob.ReadAll(ctx, s, ref)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%d bytes: got %d bytes back, %v", size, len(got), err)
			}
		}
	})
	t.Run("same bytes, same ref, concurrently", func(t *testing.T) {
		s := newStore(t)
		b := bytes.Repeat([]byte("codeset "), 10000)
		var wg sync.WaitGroup
		refs := make([]blob.Ref, 8)
		errs := make([]error, 8)
		for i := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				refs[i], errs[i] = blob.PutBytes(ctx, s, b)
			}()
		}
		wg.Wait()
		for i := range refs {
			if errs[i] != nil || refs[i] != refs[0] {
				t.Fatalf("put %d: %+v %v (first %+v)", i, refs[i], errs[i], refs[0])
			}
		}
		if got, err := blob.ReadAll(ctx, s, refs[0]); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read back: %v", err)
		}
	})
	t.Run("unknown, malformed, deleted", func(t *testing.T) {
		s := newStore(t)
		ref, err := blob.PutBytes(ctx, s, []byte("short-lived"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatalf("deleting again: %v", err)
		}
		if _, err := s.Get(ctx, ref); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("deleted: %v, want ErrNotFound", err)
		}
		for _, bad := range []blob.Ref{{Digest: "sha256:../../etc/passwd"}, {Digest: "md5:abc"}, {Digest: ""}} {
			if _, err := s.Get(ctx, bad); err == nil || errors.Is(err, blob.ErrNotFound) {
				t.Errorf("malformed %q: %v, want a refusal", bad.Digest, err)
			}
		}
	})
	t.Run("a ref that does not match its bytes", func(t *testing.T) {
		s := newStore(t)
		ref, err := blob.PutBytes(ctx, s, []byte("the real bytes"))
		if err != nil {
			t.Fatal(err)
		}
		wrongSize := ref
		wrongSize.Size = 3
		rc, err := s.Get(ctx, wrongSize)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); !errors.Is(err, blob.ErrCorrupt) {
			t.Fatalf("read with the wrong size: %v, want ErrCorrupt", err)
		}
	})
}
