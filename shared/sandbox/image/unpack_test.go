package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestHostileLayers unpacks layers written by an attacker who wants to write outside the
// layer directory. The store sits at <tmp>/store, so a layer unpacks in
// <tmp>/store/layers/<name>/ and "../../../sentinel" is the sentinel directory beside the
// store; the sentinel must come through every attempt unchanged.
func TestHostileLayers(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name    string
		entries func(sentinel string) []entry
		// unsafe says the layer must be refused with ErrUnsafeLayer; otherwise it unpacks
		// and check looks at what it became.
		unsafe bool
		check  func(t *testing.T, layer string)
	}{
		{
			name:    "dot dot",
			entries: func(string) []entry { return []entry{file("../../../sentinel/x", 0o644, "pwned")} },
			unsafe:  true,
		},
		{
			name:    "dot dot inside a name",
			entries: func(string) []entry { return []entry{file("a/../../../../sentinel/x", 0o644, "pwned")} },
			unsafe:  true,
		},
		{
			name:    "absolute",
			entries: func(s string) []entry { return []entry{file(s+"/x", 0o644, "pwned")} },
			unsafe:  true,
		},
		{
			name:    "absolute /etc",
			entries: func(string) []entry { return []entry{file("/etc/codeset-image-test-pwned", 0o644, "pwned")} },
			unsafe:  true,
		},
		{
			name: "file through an absolute symlink",
			entries: func(s string) []entry {
				return []entry{symlink("link", s), file("link/x", 0o644, "pwned")}
			},
			unsafe: true,
		},
		{
			name: "file through a relative symlink",
			entries: func(string) []entry {
				return []entry{symlink("link", "../../../sentinel"), file("link/x", 0o644, "pwned")}
			},
			unsafe: true,
		},
		{
			name: "directory through a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("link", s), dir("link/d/", 0o755)}
			},
			unsafe: true,
		},
		{
			name: "directory replaced by a symlink, then a file through it",
			entries: func(s string) []entry {
				return []entry{dir("d/", 0o755), file("d/ok", 0o644, "ok"), symlink("d", s), file("d/x", 0o644, "pwned")}
			},
			unsafe: true,
		},
		{
			name: "hard link out of the layer",
			entries: func(string) []entry {
				return []entry{hardlink("h", "../../../sentinel/keep")}
			},
			unsafe: true,
		},
		{
			name: "hard link through a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("link", s), hardlink("h", "link/keep")}
			},
			unsafe: true,
		},
		{
			name: "hard link to an absolute name",
			entries: func(s string) []entry {
				return []entry{hardlink("h", s+"/keep")}
			},
			unsafe: true,
		},
		{
			name: "whiteout through a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("link", s), file("link/.wh.keep", 0o644, "")}
			},
			unsafe: true,
		},
		{
			name: "opaque marker through a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("link", s), file("link/.wh..wh..opq", 0o644, "")}
			},
			unsafe: true,
		},
		{
			name:    "whiteout of the parent",
			entries: func(string) []entry { return []entry{file("a/.wh...", 0o644, "")} },
			unsafe:  true,
		},
		{
			name: "layer root replaced by a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("./", s)}
			},
			unsafe: true,
		},
		{
			name: "layer root replaced by a file",
			entries: func(string) []entry {
				return []entry{file(".", 0o644, "pwned")}
			},
			unsafe: true,
		},
		{
			// Not an attack on the layer, but writing through the symlink would be one:
			// tar says the file replaces the symlink.
			name: "file over a symlink",
			entries: func(s string) []entry {
				return []entry{symlink("f", s+"/keep"), file("f", 0o644, "mine")}
			},
			check: func(t *testing.T, layer string) {
				checkFile(t, layer, "f", 0o644, 0, "mine")
			},
		},
		{
			name: "devices",
			entries: func(string) []entry {
				return []entry{
					{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Mode: 0o666, Devmajor: 8}},
					{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "mem", Mode: 0o666, Devmajor: 1, Devminor: 1}},
					// A raw whiteout would hide a lower layer's file without saying so.
					{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "raw-whiteout", Mode: 0o666}},
					file("ok", 0o644, "ok"),
				}
			},
			check: func(t *testing.T, layer string) {
				for _, name := range []string{"sda", "mem", "raw-whiteout"} {
					if _, err := os.Lstat(filepath.Join(layer, name)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("device %s: %v; want it skipped", name, err)
					}
				}
				checkFile(t, layer, "ok", 0o644, 0, "ok")
			},
		},
		{
			name: "overlayfs xattrs from the tar",
			entries: func(string) []entry {
				d := dir("d/", 0o755)
				d.hdr.PAXRecords = map[string]string{
					"SCHILY.xattr.trusted.overlay.redirect": "/etc",
					"SCHILY.xattr.trusted.overlay.opaque":   "y",
				}
				return []entry{d}
			},
			check: func(t *testing.T, layer string) {
				for _, attr := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque"} {
					if got := xattr(t, filepath.Join(layer, "d"), attr); got != "" {
						t.Errorf("%s = %q; want tar xattrs ignored", attr, got)
					}
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			sentinel := filepath.Join(tmp, "sentinel")
			if err := os.Mkdir(sentinel, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sentinel, "keep"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, sentinel)
			store := filepath.Join(tmp, "store")
			s := newStore(t, store)
			img := imageOf(t, v1.Config{}, layerOf(t, c.entries(sentinel)...))

			im, err := s.Get(context.Background(), ociRef(t, []v1.Image{img}))

			if after := snapshot(t, sentinel); after != before {
				t.Errorf("sentinel changed:\n%s\nwas:\n%s", after, before)
			}
			if _, err := os.Lstat("/etc/codeset-image-test-pwned"); err == nil {
				t.Error("layer wrote /etc/codeset-image-test-pwned")
			}
			if c.unsafe {
				if !errors.Is(err, ErrUnsafeLayer) {
					t.Fatalf("Get = %v; want ErrUnsafeLayer", err)
				}
				checkNoLayers(t, store)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, im.Layers[0])
		})
	}
}

// snapshot describes dir's tree: names, types, modes, contents and opaque xattrs.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c))
		}
		b.WriteString(" " + xattr(t, p, "trusted.overlay.opaque") + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkNoLayers checks that a refused layer left nothing in the store, finished or not.
func checkNoLayers(t *testing.T, store string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(store, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("layers/%s left behind by a refused layer", e.Name())
	}
}

func TestLayerTooLarge(t *testing.T) {
	requireRoot(t)
	store := t.TempDir()
	s, err := NewStore(store, Options{MaxLayerBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var empties []entry
	for i := range 100 {
		empties = append(empties, file(fmt.Sprintf("empty%d", i), 0o644, ""))
	}
	for name, l := range map[string]v1.Layer{
		// Caught by the file content budget before the data is read.
		"one big file": layerOf(t, file("big", 0o644, strings.Repeat("x", 64<<10))),
		// No file content at all: caught by the bound on the stream, headers included.
		"many empty files": layerOf(t, empties...),
	} {
		_, err = s.Get(context.Background(), ociRef(t, []v1.Image{imageOf(t, v1.Config{}, l)}))
		if !errors.Is(err, ErrLayerTooLarge) {
			t.Errorf("%s: Get = %v; want ErrLayerTooLarge", name, err)
		}
		checkNoLayers(t, store)
	}

	small := layerOf(t, file("small", 0o644, strings.Repeat("x", 1<<10)))
	if _, err := s.Get(context.Background(), ociRef(t, []v1.Image{imageOf(t, v1.Config{}, small)})); err != nil {
		t.Errorf("layer under the limit: %v", err)
	}
}

func TestLayerDigestMismatch(t *testing.T) {
	requireRoot(t)
	img := imageOf(t, v1.Config{}, layerOf(t, file("a", 0o644, "a")))
	// A config that promises other content than the layer holds, as a tampered blob store
	// would serve.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	lying, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	_, err = newStore(t, store).Get(context.Background(), ociRef(t, []v1.Image{lying}))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Get = %v; want ErrDigestMismatch", err)
	}
	checkNoLayers(t, store)
}

// TestSameLayerEntryBeatsWhiteout: a whiteout only hides lower layers, so an entry of the
// same layer with the whited-out name stays, whichever comes first in the tar.
func TestSameLayerEntryBeatsWhiteout(t *testing.T) {
	requireRoot(t)
	img := imageOf(t, v1.Config{}, layerOf(t,
		file("before", 0o644, "stays"),
		file(".wh.before", 0o644, ""),
		file(".wh.after", 0o644, ""),
		file("after", 0o644, "stays"),
	))
	im, err := newStore(t, t.TempDir()).Get(context.Background(), ociRef(t, []v1.Image{img}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"before", "after"} {
		checkFile(t, im.Layers[0], name, 0o644, 0, "stays")
	}
}
