package changes

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayerFileSizeChanges checks that a file growing or shrinking while it is read still gives
// a valid tar, cut or padded to the size seen when the file was opened.
func TestLayerFileSizeChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content, want string }{
		{"grew", "abcdefg", "abcde"},
		{"shrank", "abc", "abc\x00\x00"},
		{"same", "abcde", "abcde"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			lw := newLayerWriter(&buf, Limits{})
			if err := lw.file("f", strings.NewReader(tc.content), entry{kind: kindFile, perm: 0o644, size: 5}); err != nil {
				t.Fatal(err)
			}
			if err := lw.file("g", strings.NewReader("next"), entry{kind: kindFile, perm: 0o644, size: 4}); err != nil {
				t.Fatal(err)
			}
			if err := lw.close(); err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(&buf)
			for _, want := range []string{tc.want, "next"} {
				if _, err := tr.Next(); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(tr)
				if err != nil || string(got) != want {
					t.Errorf("content = %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}

// TestSwappedUnderTheWalk checks that a path the agent turns into something else between the
// walk's listing and its reading is skipped, never followed: the walk saw a directory or a
// regular file at "a", and finds a symlink out of the tree, or a fifo, when it opens it.
func TestSwappedUnderTheWalk(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	swaps := map[string]func(at string) error{
		"symlink to a directory": func(at string) error { return os.Symlink(outside, at) },
		"symlink to a file":      func(at string) error { return os.Symlink(filepath.Join(outside, "secret"), at) },
		"fifo":                   func(at string) error { return unix.Mkfifo(at, 0o644) },
	}
	walks := map[string]func(lw *layerWriter, d *dirHandle, seen entry) error{
		"Diff new entry": func(lw *layerWriter, d *dirHandle, seen entry) error { return writeNew(lw, d, "a", "a", seen) },
		"FromUpper dir":  func(lw *layerWriter, d *dirHandle, seen entry) error { return upperSubdir(lw, d, "a", "a", seen) },
		"FromUpper file": func(lw *layerWriter, d *dirHandle, _ entry) error { return upperFile(lw, d, "a", "a") },
	}
	for swapName, swap := range swaps {
		for walkName, walk := range walks {
			for seenName, seen := range map[string]entry{
				"saw a dir":  {kind: kindDir, perm: 0o755},
				"saw a file": {kind: kindFile, perm: 0o644, size: 6},
			} {
				t.Run(swapName+"/"+walkName+"/"+seenName, func(t *testing.T) {
					t.Parallel()
					root := t.TempDir()
					if err := swap(filepath.Join(root, "a")); err != nil {
						t.Fatal(err)
					}
					d, err := openTree(root)
					if err != nil {
						t.Fatal(err)
					}
					defer d.close()
					var buf bytes.Buffer
					lw := newLayerWriter(&buf, Limits{})
					err = walk(lw, d, seen)
					if err != nil {
						t.Fatalf("walk: %v", err)
					}
					if lw.sum.Entries != 0 || strings.Contains(buf.String(), "secret") {
						t.Errorf("wrote %d entries for a swapped path: %q", lw.sum.Entries, buf.String())
					}
				})
			}
		}
	}
}
