package changes_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox/changes"
)

// whiteout makes rel under root an overlayfs whiteout, or skips the test if it cannot.
func whiteout(t *testing.T, root, rel string) {
	t.Helper()
	if err := unix.Mknod(filepath.Join(root, rel), unix.S_IFCHR, 0); err != nil {
		t.Skipf("cannot make an overlayfs whiteout (a 0/0 character device; needs root): %v", err)
	}
}

// setXattr sets an extended attribute on the directory rel under root, or skips the test if it
// cannot.
func setXattr(t *testing.T, root, rel, attr, value string) {
	t.Helper()
	if err := unix.Setxattr(filepath.Join(root, rel), attr, []byte(value), 0); err != nil {
		t.Skipf("cannot set %s (trusted.* needs root, and a file system with xattrs): %v", attr, err)
	}
}

func TestFromUpperHandBuilt(t *testing.T) {
	t.Parallel()
	lower, upper := t.TempDir(), t.TempDir()
	write(t, lower, "del.txt", "deleted")
	write(t, lower, "keep/old.txt", "old")
	write(t, lower, "opq/old.txt", "hidden by the opaque dir")
	write(t, lower, "useropq/old.txt", "hidden by the user.* opaque dir")
	write(t, lower, "notopq/old.txt", "stays: x is not opaque")
	write(t, lower, ".git/HEAD", "lower")

	whiteout(t, upper, "del.txt")
	write(t, upper, "keep/new.txt", "new")
	write(t, upper, "opq/a.txt", "a")
	setXattr(t, upper, "opq", "trusted.overlay.opaque", "y")
	write(t, upper, "useropq/b.txt", "b")
	setXattr(t, upper, "useropq", "user.overlay.opaque", "y")
	write(t, upper, "notopq/c.txt", "c")
	setXattr(t, upper, "notopq", "trusted.overlay.opaque", "x")
	write(t, upper, ".git/HEAD", "upper")
	if err := unix.Mkfifo(filepath.Join(upper, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, upper, "escape", "/etc")

	var layer bytes.Buffer
	if _, err := changes.FromUpper(&layer, upper, "", changes.Limits{}); err != nil {
		t.Fatalf("FromUpper: %v", err)
	}
	want := []string{
		".wh.del.txt", "escape", "keep", "keep/new.txt", "notopq", "notopq/c.txt",
		"opq", "opq/.wh..wh..opq", "opq/a.txt", "useropq", "useropq/.wh..wh..opq", "useropq/b.txt",
	}
	if got := entryNames(t, layer.Bytes()); !slices.Equal(got, want) {
		t.Errorf("layer entries = %q\nwant %q", got, want)
	}

	if _, err := changes.Apply(&layer, lower, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertTree(t, lower, map[string]string{
		"escape":         "symlink to /etc",
		"keep":           "dir 0755",
		"keep/old.txt":   `file 0644 "old"`,
		"keep/new.txt":   `file 0644 "new"`,
		"opq":            "dir 0755",
		"opq/a.txt":      `file 0644 "a"`,
		"useropq":        "dir 0755",
		"useropq/b.txt":  `file 0644 "b"`,
		"notopq":         "dir 0755",
		"notopq/old.txt": `file 0644 "stays: x is not opaque"`,
		"notopq/c.txt":   `file 0644 "c"`,
	})
}

// TestFromUpperSub checks what becomes of the subdirectory sub of the merged tree, as its
// upper directory tells.
func TestFromUpperSub(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, upper string)
		want  []string
	}{
		{"untouched", func(t *testing.T, upper string) { write(t, upper, "elsewhere/x", "x") }, nil},
		{"changed", func(t *testing.T, upper string) { write(t, upper, "work/repo/a.txt", "a") }, []string{"a.txt"}},
		{"opaque", func(t *testing.T, upper string) {
			write(t, upper, "work/repo/a.txt", "a")
			setXattr(t, upper, "work/repo", "trusted.overlay.opaque", "y")
		}, []string{".wh..wh..opq", "a.txt"}},
		{"under an opaque directory", func(t *testing.T, upper string) {
			write(t, upper, "work/repo/a.txt", "a")
			setXattr(t, upper, "work", "trusted.overlay.opaque", "y")
		}, []string{".wh..wh..opq", "a.txt"}},
		{"gone under an opaque directory", func(t *testing.T, upper string) {
			write(t, upper, "work/other", "x")
			setXattr(t, upper, "work", "trusted.overlay.opaque", "y")
		}, []string{".wh..wh..opq"}},
		{"deleted", func(t *testing.T, upper string) {
			mkdir(t, upper, "work", 0o755)
			whiteout(t, upper, "work/repo")
		}, []string{".wh..wh..opq"}},
		{"replaced by a symlink, never followed", func(t *testing.T, upper string) {
			write(t, upper, "elsewhere/secret", "secret")
			symlink(t, upper, "work/repo", "../elsewhere")
		}, []string{".wh..wh..opq"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			upper := t.TempDir()
			tc.build(t, upper)
			var layer bytes.Buffer
			if _, err := changes.FromUpper(&layer, upper, "work/repo/", changes.Limits{}); err != nil {
				t.Fatalf("FromUpper: %v", err)
			}
			if got := entryNames(t, layer.Bytes()); !slices.Equal(got, tc.want) {
				t.Errorf("layer entries = %q, want %q", got, tc.want)
			}
		})
	}
	for _, sub := range []string{"../x", "/abs"} {
		if _, err := changes.FromUpper(&bytes.Buffer{}, t.TempDir(), sub, changes.Limits{}); err == nil {
			t.Errorf("FromUpper(sub %q) succeeded, want an error", sub)
		}
	}
}

// TestFromUpperOverlayMount changes a real overlay mount the way an agent would, then checks
// that the layer taken from its upper directory turns a copy of the lower directory into the
// merged view. It needs root and a kernel that mounts overlayfs in a new mount namespace.
func TestFromUpperOverlayMount(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("no unshare to mount an overlay in a private mount namespace: %v", err)
	}
	dir := t.TempDir()
	lower, upper, work, merged, view := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"),
		filepath.Join(dir, "work"), filepath.Join(dir, "merged"), filepath.Join(dir, "view")
	for _, d := range []string{lower, upper, work, merged, view} {
		mkdir(t, d, "", 0o755)
	}
	write(t, lower, "repo/keep.txt", "keep")
	write(t, lower, "repo/mod.txt", "old")
	write(t, lower, "repo/del.txt", "deleted")
	write(t, lower, "repo/mode.txt", "mode")
	write(t, lower, "repo/opq/old.txt", "replaced")
	write(t, lower, "repo/gone/x.txt", "gone")
	write(t, lower, "repo/.git/HEAD", "ref")
	write(t, lower, "other/file", "outside the sub")

	// The changes are made through the merged view, in a mount namespace of their own; the
	// merged view is then copied to view, for comparison after the namespace is gone.
	script := `set -e
mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" || exit 99
cd "$4/repo"
rm del.txt
rm -r opq && mkdir opq && echo only > opq/only.txt
rm -r gone
echo added > added.txt
echo more >> mod.txt
chmod 0600 mode.txt
mkdir -p new/deep && echo deep > new/deep/f.txt
ln -s mod.txt link
echo changed > .git/HEAD
echo changed > ../other/file
cp -a "$4/repo/." "$5/"
`
	out, err := exec.Command("unshare", "--mount", "sh", "-c", script, "sh", lower, upper, work, merged, view).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 99 {
		t.Skipf("cannot mount overlayfs (needs root): %s", out)
	}
	if err != nil {
		if strings.Contains(string(out), "unshare failed") {
			t.Skipf("cannot make a mount namespace (needs root): %s", out)
		}
		t.Fatalf("change the overlay: %v\n%s", err, out)
	}

	var layer bytes.Buffer
	if _, err := changes.FromUpper(&layer, upper, "repo", changes.Limits{}); err != nil {
		t.Fatalf("FromUpper: %v", err)
	}
	names := entryNames(t, layer.Bytes())
	for _, want := range []string{".wh.del.txt", ".wh.gone", "opq/.wh..wh..opq"} {
		if !slices.Contains(names, want) {
			t.Errorf("layer entries %q lack %s", names, want)
		}
	}
	target := filepath.Join(dir, "target")
	copyTree(t, filepath.Join(lower, "repo"), target)
	if _, err := changes.Apply(&layer, target, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertTree(t, target, treeOf(t, view))
	if data, err := os.ReadFile(filepath.Join(target, ".git/HEAD")); err != nil || string(data) != "ref" {
		t.Errorf(".git/HEAD = %q, %v; want the lower copy's, untouched", data, err)
	}
}

// TestFromUpperRefusesLowerReferences checks that FromUpper fails, rather than write a wrong
// layer, on an upper directory whose entries refer to content in the lower layers.
func TestFromUpperRefusesLowerReferences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, rel, attr string }{
		{"redirect", "renamed", "trusted.overlay.redirect"},
		{"metacopy", "meta.txt", "trusted.overlay.metacopy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			upper := t.TempDir()
			if tc.name == "redirect" {
				mkdir(t, upper, tc.rel, 0o755)
			} else {
				write(t, upper, tc.rel, "")
			}
			setXattr(t, upper, tc.rel, tc.attr, "")
			_, err := changes.FromUpper(&bytes.Buffer{}, upper, "", changes.Limits{})
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("FromUpper: %v, want an error naming %s", err, tc.name)
			}
		})
	}
}
