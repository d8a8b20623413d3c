package changes_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/sandbox/changes"
)

// tarEntry is one entry of a layer forged by hand, as the adversary would.
type tarEntry struct {
	name string
	typ  byte   // tar.TypeReg when zero
	body string // regular files
	link string // symlinks and hard links
	mode int64  // 0644 when zero
}

func forge(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)[:h.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestApplyAttacks applies forged layers to a repository whose tests are protected, and checks
// from the attacker's side that they fail: nothing outside the tree changes, protected files keep
// their pristine content, and every refused change is listed.
func TestApplyAttacks(t *testing.T) {
	t.Parallel()
	protected := changes.Patterns{"tests", "**/conftest.py"}
	for _, tc := range []struct {
		name    string
		layer   []tarEntry // "OUTSIDE" in a name or link target stands for the sentinel directory
		err     string     // in Apply's error; "" for none
		ignored []string
		check   func(t *testing.T, root string) // what the layer's allowed changes did
	}{
		{name: "dot-dot", layer: []tarEntry{{name: "../OUTSIDE/x"}}, err: "leaves the tree"},
		{name: "dot-dot inside", layer: []tarEntry{{name: "src/../../OUTSIDE/x"}}, err: "leaves the tree"},
		{name: "absolute", layer: []tarEntry{{name: "OUTSIDE/x"}}, err: "leaves the tree"},
		{name: "empty name", layer: []tarEntry{{name: ""}}, err: "leaves the tree"},
		{name: "whiteout of dot-dot", layer: []tarEntry{{name: ".wh..."}}, err: "leaves the tree"},
		{name: "whiteout of the root", layer: []tarEntry{{name: ".wh.."}}, err: "leaves the tree"},
		{name: "file replacing the root", layer: []tarEntry{{name: "."}}, err: "root"},
		{
			name: "error keeps what came before",
			layer: []tarEntry{
				{name: "first.txt", body: "applied"},
				{name: "../x"},
				{name: "never.txt"},
			},
			err: "leaves the tree",
			check: func(t *testing.T, root string) {
				if _, err := os.Stat(filepath.Join(root, "first.txt")); err != nil {
					t.Errorf("the entry before the error is gone: %v", err)
				}
				if _, err := os.Stat(filepath.Join(root, "never.txt")); err == nil {
					t.Error("an entry after the error was applied")
				}
			},
		},
		{
			name: "write through a planted symlink",
			layer: []tarEntry{
				{name: "lib", typ: tar.TypeSymlink, link: "OUTSIDE"},
				{name: "lib/x.py", body: "escaped"},
				{name: "lib/sub/y.py", body: "escaped"},
				{name: "lib/.wh.sentinel.txt"},
				{name: "lib/.wh..wh..opq"},
			},
			ignored: []string{"lib/x.py", "lib/sub/y.py", "lib/sentinel.txt", "lib"},
			check: func(t *testing.T, root string) {
				if link, err := os.Readlink(filepath.Join(root, "lib")); err != nil || !strings.HasSuffix(link, "outside") {
					t.Errorf("lib = %q, %v; want the planted symlink", link, err)
				}
			},
		},
		{
			name: "write through a symlink to the root",
			layer: []tarEntry{
				{name: "alias", typ: tar.TypeSymlink, link: "."},
				{name: "alias/tests/test_x.py", body: "forged"},
			},
			ignored: []string{"alias/tests/test_x.py"},
		},
		{
			name:    "write through a file",
			layer:   []tarEntry{{name: "README.md/x", body: "x"}},
			ignored: []string{"README.md/x"},
		},
		{
			name: "protected dir replaced by a symlink",
			layer: []tarEntry{
				{name: "tests", typ: tar.TypeSymlink, link: "OUTSIDE"},
				{name: "tests/x.py", body: "forged"},
			},
			ignored: []string{"tests", "tests/x.py"},
		},
		{
			name:    "dir holding a protected file replaced by a symlink",
			layer:   []tarEntry{{name: "src", typ: tar.TypeSymlink, link: "OUTSIDE"}},
			ignored: []string{"src"},
		},
		{
			name:    "whiteout of a protected file",
			layer:   []tarEntry{{name: "tests/.wh.test_x.py"}},
			ignored: []string{"tests/test_x.py"},
		},
		{
			name:    "whiteout of a dir holding a protected file",
			layer:   []tarEntry{{name: ".wh.src"}},
			ignored: []string{"src"},
		},
		{
			name:    "whiteout of a missing protected path",
			layer:   []tarEntry{{name: "lib/.wh.conftest.py"}},
			ignored: []string{"lib/conftest.py"},
		},
		{
			name:    "opaque dir holding a protected file",
			layer:   []tarEntry{{name: "src", typ: tar.TypeDir, mode: 0o755}, {name: "src/.wh..wh..opq"}},
			ignored: []string{"src/conftest.py"},
			check: func(t *testing.T, root string) {
				if _, err := os.Lstat(filepath.Join(root, "src/app.py")); err == nil {
					t.Error("src/app.py survived the opaque marker; only the protected file may")
				}
			},
		},
		{
			name:    "opaque root",
			layer:   []tarEntry{{name: ".wh..wh..opq"}},
			ignored: []string{".git", "src", "tests"},
			check: func(t *testing.T, root string) {
				if _, err := os.Lstat(filepath.Join(root, "README.md")); err == nil {
					t.Error("README.md survived the opaque root")
				}
			},
		},
		{
			name:    "opaque protected dir",
			layer:   []tarEntry{{name: "tests/.wh..wh..opq"}},
			ignored: []string{"tests"},
		},
		{
			name:    "file replacing a protected dir",
			layer:   []tarEntry{{name: "tests", body: "not a dir"}},
			ignored: []string{"tests"},
		},
		{
			name:    "file replacing a dir holding a protected file",
			layer:   []tarEntry{{name: "src", body: "not a dir"}},
			ignored: []string{"src"},
		},
		{
			name:    "file replacing a protected file",
			layer:   []tarEntry{{name: "tests/test_x.py", body: "def test_x(): pass"}},
			ignored: []string{"tests/test_x.py"},
		},
		{
			name:    "symlink at a protected path",
			layer:   []tarEntry{{name: "src/conftest.py", typ: tar.TypeSymlink, link: "OUTSIDE/sentinel.txt"}},
			ignored: []string{"src/conftest.py"},
		},
		{
			name:    "new file shadowing a protected name",
			layer:   []tarEntry{{name: "lib/conftest.py", body: "import os"}},
			ignored: []string{"lib/conftest.py"},
		},
		{
			name:    "protected dir made unreadable",
			layer:   []tarEntry{{name: "tests", typ: tar.TypeDir, mode: 0o000}},
			ignored: []string{"tests"},
		},
		{
			name:    "dir holding a protected file made unreadable",
			layer:   []tarEntry{{name: "src", typ: tar.TypeDir, mode: 0o000}},
			ignored: []string{"src"},
		},
		{
			name: "unchanged protected dir is no change",
			layer: []tarEntry{
				{name: "tests", typ: tar.TypeDir, mode: 0o755},
				{name: "tests/new_test.py", body: "forged"},
			},
			ignored: []string{"tests/new_test.py"},
		},
		{
			name: "git data",
			layer: []tarEntry{
				{name: ".git/hooks/pre-commit", body: "#!/bin/sh", mode: 0o755},
				{name: ".wh..git"},
			},
			ignored: []string{".git/hooks/pre-commit", ".git"},
		},
		{
			name:    "hard link to a protected file",
			layer:   []tarEntry{{name: "evil.py", typ: tar.TypeLink, link: "tests/test_x.py"}},
			ignored: []string{"evil.py"},
		},
		{
			name: "devices and fifos",
			layer: []tarEntry{
				{name: "dev", typ: tar.TypeChar},
				{name: "blk", typ: tar.TypeBlock},
				{name: "fifo", typ: tar.TypeFifo},
			},
			ignored: []string{"dev", "blk", "fifo"},
		},
		{
			name: "listed once",
			layer: []tarEntry{
				{name: "tests/x.py", body: "1"},
				{name: "tests/x.py", body: "2"},
			},
			ignored: []string{"tests/x.py"},
		},
		{
			name: "allowed changes beside refused ones",
			layer: []tarEntry{
				{name: "src/app.py", body: "fixed", mode: 0o600},
				{name: "tests/test_x.py", body: "forged"},
				{name: "src/new/mod.py", body: "new"},
			},
			ignored: []string{"tests/test_x.py"},
			check: func(t *testing.T, root string) {
				if data, _ := os.ReadFile(filepath.Join(root, "src/app.py")); string(data) != "fixed" {
					t.Errorf("src/app.py = %q, want the agent's fix", data)
				}
				if data, _ := os.ReadFile(filepath.Join(root, "src/new/mod.py")); string(data) != "new" {
					t.Errorf("src/new/mod.py = %q, want the agent's new file", data)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			root, outside := filepath.Join(parent, "root"), filepath.Join(parent, "outside")
			write(t, outside, "sentinel.txt", "sentinel")
			write(t, root, "README.md", "readme")
			write(t, root, "src/app.py", "buggy")
			write(t, root, "src/conftest.py", "pristine conftest")
			write(t, root, "tests/test_x.py", "pristine test")
			write(t, root, ".git/HEAD", "ref")

			var entries []tarEntry
			for _, e := range tc.layer {
				e.name = strings.ReplaceAll(e.name, "OUTSIDE", outside)
				e.link = strings.ReplaceAll(e.link, "OUTSIDE", outside)
				entries = append(entries, e)
			}
			res, err := changes.Apply(forge(t, entries...), root, protected.Match)
			if tc.err == "" && err != nil {
				t.Errorf("Apply: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Apply: %v, want an error saying %q", err, tc.err)
			}
			if !slices.Equal(res.Ignored, tc.ignored) {
				t.Errorf("Ignored = %q, want %q", res.Ignored, tc.ignored)
			}

			assertTree(t, outside, map[string]string{"sentinel.txt": `file 0644 "sentinel"`})
			if _, err := os.Lstat(filepath.Join(parent, "x")); err == nil {
				t.Error("an entry was written next to the tree")
			}
			for rel, want := range map[string]string{
				"tests/test_x.py": "pristine test", "src/conftest.py": "pristine conftest", ".git/HEAD": "ref",
			} {
				p := filepath.Join(root, rel)
				info, err := os.Lstat(p)
				if err != nil || !info.Mode().IsRegular() {
					t.Errorf("protected %s: %v, %v; want the pristine file", rel, info, err)
					continue
				}
				if data, _ := os.ReadFile(p); string(data) != want {
					t.Errorf("protected %s = %q, want %q", rel, data, want)
				}
			}
			for _, dir := range []string{"tests", "src"} {
				if info, err := os.Lstat(filepath.Join(root, dir)); err != nil || info.Mode().Perm() != 0o755 {
					t.Errorf("%s: %v, %v; want a 0755 directory", dir, info, err)
				}
			}
			if tc.check != nil {
				tc.check(t, root)
			}
		})
	}
}

// TestApplyModes checks that Apply keeps only permission bits, ignores the umask, and creates
// missing parents as 0755 directories.
func TestApplyModes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	layer := forge(t,
		tarEntry{name: "a/b/setuid", body: "x", mode: 0o4777},
		tarEntry{name: "open", body: "x", mode: 0o666},
		tarEntry{name: "locked", typ: tar.TypeDir, mode: 0o500},
		tarEntry{name: "locked/inside", body: "written before the dir is locked", mode: 0o400},
	)
	res, err := changes.Apply(layer, root, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Applied != 4 {
		t.Errorf("Applied = %d, want 4", res.Applied)
	}
	assertTree(t, root, map[string]string{
		"a":             "dir 0755",
		"a/b":           "dir 0755",
		"a/b/setuid":    `file 0777 "x"`,
		"open":          `file 0666 "x"`,
		"locked":        "dir 0500",
		"locked/inside": `file 0400 "written before the dir is locked"`,
	})
}

// TestCompiledPythonIsNeverTheWork: __pycache__ is left out of a layer wherever it is, and a
// forged layer that carries a .pyc next to the tests is refused even with nothing protected (a
// .pyc whose recorded source size and time match runs instead of its source).
func TestCompiledPythonIsNeverTheWork(t *testing.T) {
	pristine, work := t.TempDir(), t.TempDir()
	for _, root := range []string{pristine, work} {
		os.MkdirAll(filepath.Join(root, "tests"), 0o755)
		os.WriteFile(filepath.Join(root, "tests", "test_a.py"), []byte("def test(): assert False\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(work, "tests", "__pycache__"), 0o755)
	os.WriteFile(filepath.Join(work, "tests", "__pycache__", "test_a.cpython-311.pyc"), []byte("forged"), 0o644)
	os.WriteFile(filepath.Join(work, "fix.py"), []byte("fixed\n"), 0o644)
	var buf bytes.Buffer
	if _, err := changes.Diff(&buf, pristine, work, changes.Limits{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "__pycache__") {
		t.Fatal("a layer carries __pycache__")
	}
	forged := forge(t, tarEntry{name: "tests/__pycache__/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "tests/__pycache__/test_a.cpython-311.pyc", body: "forged"})
	res, err := changes.Apply(forged, pristine, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pristine, "tests", "__pycache__")); !os.IsNotExist(err) || len(res.Ignored) != 2 {
		t.Fatalf("a forged .pyc was applied: %+v, %v", res, err)
	}
}
