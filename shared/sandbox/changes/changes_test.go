package changes_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox/changes"
)

// write creates the file rel under root with content, creating its parents.
func write(t *testing.T, root, rel, content string) {
	t.Helper()
	writeMode(t, root, rel, content, 0o644)
}

func writeMode(t *testing.T, root, rel, content string, perm fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	chmod(t, root, rel, perm)
}

func mkdir(t *testing.T, root, rel string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, root, rel, perm)
}

func chmod(t *testing.T, root, rel string, perm fs.FileMode) {
	t.Helper()
	if err := os.Chmod(filepath.Join(root, rel), perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the tree src (symlinks as symlinks, permission bits kept) into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, data, 0o600); err != nil {
				return err
			}
		}
		return os.Chmod(target, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// treeOf describes every path under root but the .git at its root, without following symlinks:
// what a grader would see of the work.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch rel {
		case ".":
			return nil
		case ".git":
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tree[rel] = "symlink to " + link
		case info.IsDir():
			tree[rel] = fmt.Sprintf("dir %#o", perm)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tree[rel] = fmt.Sprintf("file %#o %q", perm, data)
		default:
			tree[rel] = "other " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return tree
}

// assertTree fails the test with the differences if the tree at root is not want.
func assertTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := treeOf(t, root)
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s: want %s", p, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s: %s", p, g))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("tree %s differs:\n  %s", root, strings.Join(diffs, "\n  "))
	}
}

// entryNames lists the names of a layer's entries, in order.
func entryNames(t *testing.T, layer []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		names = append(names, h.Name)
	}
}

// pristineTree builds the tree that the round trips change.
func pristineTree(t *testing.T, root string) {
	write(t, root, "keep.txt", "keep")
	write(t, root, "mod.txt", "old content")
	write(t, root, "same.txt", "aaaa")
	write(t, root, "del.txt", "delete me")
	write(t, root, "deldir/a.txt", "a")
	write(t, root, "deldir/sub/b.txt", "b")
	write(t, root, "f2d", "a file that becomes a directory")
	write(t, root, "d2f/x.txt", "a directory that becomes a file")
	symlink(t, root, "link", "keep.txt")
	write(t, root, "mode.sh", "#!/bin/sh\n")
	write(t, root, "dirmode/f.txt", "f")
	write(t, root, ".git/HEAD", "ref: refs/heads/main\n")
	write(t, root, ".git/objects/ab/cdef", "blob")
}

// longPath is too long for a ustar header, even split: its last name alone is over 100 bytes.
var longPath = "long-" + strings.Repeat("x", 60) + "/" + strings.Repeat("y", 120) + ".txt"

// roundTrips are changes to a copy of pristineTree, each with the entries its layer must hold
// (nil: not checked).
var roundTrips = []struct {
	name    string
	change  func(t *testing.T, work string)
	entries []string
}{
	{"nothing", func(*testing.T, string) {}, []string{}},
	{"add file", func(t *testing.T, w string) { write(t, w, "added.txt", "new") }, []string{"added.txt"}},
	{"modify file", func(t *testing.T, w string) { write(t, w, "mod.txt", "new content, longer") }, []string{"mod.txt"}},
	{"modify file keeping its size", func(t *testing.T, w string) {
		write(t, w, "same.txt", "bbbb")
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(w, "same.txt"), later, later); err != nil {
			t.Fatal(err)
		}
	}, []string{"same.txt"}},
	{"delete file", func(t *testing.T, w string) { remove(t, w, "del.txt") }, []string{".wh.del.txt"}},
	{"delete dir", func(t *testing.T, w string) { remove(t, w, "deldir") }, []string{".wh.deldir"}},
	{"delete inside dir", func(t *testing.T, w string) { remove(t, w, "deldir/sub/b.txt") }, []string{"deldir/sub/.wh.b.txt"}},
	{"file to dir", func(t *testing.T, w string) {
		remove(t, w, "f2d")
		write(t, w, "f2d/inner.txt", "inner")
	}, []string{"f2d", "f2d/inner.txt"}},
	{"dir to file", func(t *testing.T, w string) {
		remove(t, w, "d2f")
		write(t, w, "d2f", "now a file")
	}, []string{"d2f"}},
	{"symlink added", func(t *testing.T, w string) { symlink(t, w, "newlink", "../../outside/target") }, []string{"newlink"}},
	{"symlink to a directory outside", func(t *testing.T, w string) { symlink(t, w, "escape", "/") }, []string{"escape"}},
	{"symlink changed", func(t *testing.T, w string) {
		remove(t, w, "link")
		symlink(t, w, "link", "mod.txt")
	}, []string{"link"}},
	{"symlink replaces file", func(t *testing.T, w string) {
		remove(t, w, "keep.txt")
		symlink(t, w, "keep.txt", "mod.txt")
	}, []string{"keep.txt"}},
	{"file replaces symlink", func(t *testing.T, w string) {
		remove(t, w, "link")
		write(t, w, "link", "regular now")
	}, []string{"link"}},
	{"mode change", func(t *testing.T, w string) { chmod(t, w, "mode.sh", 0o755) }, []string{"mode.sh"}},
	{"dir mode change", func(t *testing.T, w string) { chmod(t, w, "dirmode", 0o700) }, []string{"dirmode"}},
	{"read-only new dir", func(t *testing.T, w string) {
		write(t, w, "ro/f.txt", "in a read-only dir")
		chmod(t, w, "ro", 0o555)
	}, []string{"ro", "ro/f.txt"}},
	{"nested new dirs", func(t *testing.T, w string) { write(t, w, "new/a/b/c/d.txt", "deep") },
		[]string{"new", "new/a", "new/a/b", "new/a/b/c", "new/a/b/c/d.txt"}},
	{"names with spaces", func(t *testing.T, w string) { write(t, w, "dir with spaces/file name.txt", "spaces") },
		[]string{"dir with spaces", "dir with spaces/file name.txt"}},
	{"long path", func(t *testing.T, w string) { write(t, w, longPath, "long") },
		[]string{filepath.Dir(longPath), longPath}},
	{"git changes", func(t *testing.T, w string) {
		write(t, w, ".git/HEAD", "changed")
		write(t, w, ".git/new", "new")
		remove(t, w, ".git/objects")
	}, []string{}},
	{"everything", func(t *testing.T, w string) {
		write(t, w, "added.txt", "new")
		write(t, w, "mod.txt", "new content, longer")
		remove(t, w, "del.txt")
		remove(t, w, "deldir")
		remove(t, w, "f2d")
		write(t, w, "f2d/inner.txt", "inner")
		remove(t, w, "d2f")
		write(t, w, "d2f", "now a file")
		remove(t, w, "link")
		symlink(t, w, "link", "mod.txt")
		chmod(t, w, "mode.sh", 0o755)
		write(t, w, "new/a/b/c/d.txt", "deep")
		write(t, w, "dir with spaces/file name.txt", "spaces")
		write(t, w, longPath, "long")
		write(t, w, ".git/HEAD", "changed")
	}, nil},
}

// extractors are the two ways to take a layer out of a work tree that started as pristine:
// comparing it with the pristine copy, or with a manifest of the work tree taken before the
// change.
var extractors = []struct {
	name string
	run  func(t *testing.T, pristine, work string, change func()) ([]byte, changes.Summary, error)
}{
	{"Diff", func(t *testing.T, pristine, work string, change func()) ([]byte, changes.Summary, error) {
		change()
		var layer bytes.Buffer
		sum, err := changes.Diff(&layer, pristine, work, changes.Limits{})
		return layer.Bytes(), sum, err
	}},
	{"Manifest", func(t *testing.T, _, work string, change func()) ([]byte, changes.Summary, error) {
		m, err := changes.Snapshot(work)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		change()
		var layer bytes.Buffer
		sum, err := m.Diff(&layer, work, changes.Limits{})
		return layer.Bytes(), sum, err
	}},
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, x := range extractors {
		for _, tc := range roundTrips {
			t.Run(x.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				pristine, work, target := t.TempDir(), t.TempDir(), t.TempDir()
				pristineTree(t, pristine)
				copyTree(t, pristine, work)
				copyTree(t, pristine, target)

				layer, sum, err := x.run(t, pristine, work, func() { tc.change(t, work) })
				if err != nil {
					t.Fatalf("extract: %v", err)
				}
				names := entryNames(t, layer)
				if sum.Entries != len(names) {
					t.Errorf("Summary.Entries = %d, layer has %d", sum.Entries, len(names))
				}
				if tc.entries != nil && !slices.Equal(names, tc.entries) {
					t.Errorf("layer entries = %q, want %q", names, tc.entries)
				}
				for _, n := range names {
					if n == ".git" || strings.HasPrefix(n, ".git/") || strings.Contains(n, ".wh..git") {
						t.Errorf("layer carries %s", n)
					}
				}

				res, err := changes.Apply(bytes.NewReader(layer), target, nil)
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if res.Applied != len(names) || len(res.Ignored) != 0 {
					t.Errorf("Apply = %+v, want %d applied and none ignored", res, len(names))
				}
				assertTree(t, target, treeOf(t, work))
			})
		}
	}
}

// TestExtractionSkips checks that what a layer cannot carry stays out of it: devices, fifos,
// sockets, names that would read as whiteouts, and .git at the root (but not deeper).
func TestExtractionSkips(t *testing.T) {
	t.Parallel()
	for _, x := range extractors {
		t.Run(x.name, func(t *testing.T) {
			t.Parallel()
			pristine, work := t.TempDir(), t.TempDir()
			write(t, pristine, "a.txt", "a")
			copyTree(t, pristine, work)
			layer, _, err := x.run(t, pristine, work, func() {
				if err := unix.Mkfifo(filepath.Join(work, "fifo"), 0o644); err != nil {
					t.Fatal(err)
				}
				write(t, work, ".wh.a.txt", "not a whiteout")
				write(t, work, "sub/.wh..wh..opq", "not a marker")
				write(t, work, ".git/config", "git data")
				write(t, work, "vendor/.git/HEAD", "a nested repository is part of the work")
			})
			if err != nil {
				t.Fatalf("extract: %v", err)
			}
			want := []string{"sub", "vendor", "vendor/.git", "vendor/.git/HEAD"}
			if got := entryNames(t, layer); !slices.Equal(got, want) {
				t.Errorf("layer entries = %q, want %q", got, want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	fromUpper := func(t *testing.T, _, work string, lim changes.Limits) error {
		_, err := changes.FromUpper(io.Discard, work, "", lim)
		return err
	}
	diff := func(t *testing.T, pristine, work string, lim changes.Limits) error {
		_, err := changes.Diff(io.Discard, pristine, work, lim)
		return err
	}
	manifest := func(t *testing.T, pristine, work string, lim changes.Limits) error {
		m, err := changes.Snapshot(pristine) // the same tree as work was before the change
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Diff(io.Discard, work, lim)
		return err
	}
	for _, ex := range []struct {
		name    string
		extract func(t *testing.T, pristine, work string, lim changes.Limits) error
	}{{"FromUpper", fromUpper}, {"Diff", diff}, {"Manifest", manifest}} {
		for _, tc := range []struct {
			name string
			lim  changes.Limits
			want string // in the error; "" for success
		}{
			{"within", changes.Limits{MaxBytes: 30, MaxEntries: 3}, ""},
			{"bytes", changes.Limits{MaxBytes: 29}, "29 bytes of file contents (Limits.MaxBytes)"},
			{"entries", changes.Limits{MaxEntries: 2}, "2 entries (Limits.MaxEntries)"},
		} {
			t.Run(ex.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				pristine, work := t.TempDir(), t.TempDir()
				for _, name := range []string{"a", "b", "c"} {
					write(t, work, name, "0123456789")
				}
				err := ex.extract(t, pristine, work, tc.lim)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("extract: %v", err)
					}
					return
				}
				if !errors.Is(err, changes.ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("extract: %v, want ErrTooLarge saying %q", err, tc.want)
				}
			})
		}
	}
}
