package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"
)

var sampleConfig = v1.Config{
	Env:        []string{"PATH=/bin", "GREETING=hello"},
	WorkingDir: "/home/app",
	User:       "1000:1000",
}

// sampleImage has a base layer with the kinds of entries images hold and a second layer that
// deletes, hides and replaces some of them.
func sampleImage(t *testing.T) v1.Image {
	t.Helper()
	hidden := dir("etc/", 0o755)
	// A layer must not be able to steer overlayfs through tar xattrs: were this applied,
	// the merged /etc would lose the base layer's files.
	hidden.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}
	base := layerOf(t,
		dir("bin/", 0o755),
		file("bin/tool", 0o755, "#!/bin/sh\necho tool\n"),
		file("bin/su", 0o4755, "setuid"),
		symlink("bin/sh", "tool"),
		hardlink("bin/tool2", "bin/tool"),
		dir("etc/", 0o755),
		file("etc/gone", 0o644, "deleted by the top layer"),
		file("etc/keep", 0o644, "kept"),
		file("etc/replaced", 0o644, "old"),
		dir("opq/", 0o755),
		file("opq/old", 0o644, "hidden by the top layer"),
		owned(dir("home/app/", 0o750), 1000, 1000),
		owned(file("home/app/data", 0o640, "user data"), 1000, 1000),
		symlink("abs", "/etc/passwd"),
		entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o620}},
		entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
	)
	top := layerOf(t,
		hidden,
		file("etc/.wh.gone", 0o644, ""),
		file("etc/replaced", 0o600, "new"),
		dir("opq/", 0o755),
		file("opq/.wh..wh..opq", 0o644, ""),
		file("opq/new", 0o644, "new"),
	)
	return imageOf(t, sampleConfig, base, top)
}

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := NewStore(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGetRefForms(t *testing.T) {
	requireRoot(t)
	img := sampleImage(t)
	manifest := digestOf(t, img)
	configName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	tagged := reg.push(t, "test/sample:v1", img)
	pinned := reg.host + "/test/sample@" + manifest.String()
	oci := ociRef(t, []v1.Image{img}, "v1")

	cases := []struct {
		name, ref string
		digest    v1.Hash
	}{
		{"registry tag", tagged, manifest},
		{"registry digest", pinned, manifest},
		{"oci layout", oci, manifest},
		{"oci layout tag", oci + ":v1", manifest},
		{"oci layout digest", oci + ":" + manifest.String(), manifest},
		{"docker archive", archiveRef(t, img, "example.com/test/sample:v1"), configName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, t.TempDir())
			im, err := s.Get(context.Background(), c.ref)
			if err != nil {
				t.Fatal(err)
			}
			if im.Ref != c.ref || im.Digest != c.digest.String() {
				t.Errorf("Ref, Digest = %q, %q; want %q, %q", im.Ref, im.Digest, c.ref, c.digest)
			}
			if !slices.Equal(im.Env, sampleConfig.Env) || im.WorkDir != sampleConfig.WorkingDir || im.User != sampleConfig.User {
				t.Errorf("config = %q %q %q; want %q %q %q", im.Env, im.WorkDir, im.User,
					sampleConfig.Env, sampleConfig.WorkingDir, sampleConfig.User)
			}
			if len(im.Layers) != 2 {
				t.Fatalf("Layers = %q; want 2", im.Layers)
			}
			checkBase(t, im.Layers[0])
			checkTop(t, im.Layers[1])
			checkMerged(t, im)
		})
	}
}

func TestGetDockerArchiveTag(t *testing.T) {
	requireRoot(t)
	ref := archiveRef(t, sampleImage(t), "example.com/test/sample:v1")
	s := newStore(t, t.TempDir())
	if _, err := s.Get(context.Background(), ref+":example.com/test/sample:v1"); err != nil {
		t.Errorf("matching tag: %v", err)
	}
	if _, err := s.Get(context.Background(), ref+":example.com/test/other:v1"); err == nil {
		t.Error("another tag: got the image; want an error")
	}
}

func TestGetOCILayoutSelects(t *testing.T) {
	requireRoot(t)
	v1img := imageOf(t, v1.Config{Env: []string{"V=1"}}, layerOf(t, file("v", 0o644, "1")))
	v2img := imageOf(t, v1.Config{Env: []string{"V=2"}}, layerOf(t, file("v", 0o644, "2")))
	ref := ociRef(t, []v1.Image{v1img, v2img}, "v1", "v2")
	s := newStore(t, t.TempDir())
	for _, c := range []struct{ sel, env string }{
		{"v2", "V=2"},
		{"v1", "V=1"},
		{digestOf(t, v2img).String(), "V=2"},
	} {
		im, err := s.Get(context.Background(), ref+":"+c.sel)
		if err != nil {
			t.Errorf("%s: %v", c.sel, err)
			continue
		}
		if !slices.Equal(im.Env, []string{c.env}) {
			t.Errorf("%s: Env = %q; want %q", c.sel, im.Env, c.env)
		}
	}
	if _, err := s.Get(context.Background(), ref); err == nil {
		t.Error("two images and no tag: got one; want an error")
	}
	if _, err := s.Get(context.Background(), ref+":v3"); err == nil {
		t.Error("unknown tag: got an image; want an error")
	}
}

// platformIndex holds an image for this host and one for another architecture.
func platformIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	other := "riscv64"
	if runtime.GOARCH == other {
		other = "s390x"
	}
	host := imageOf(t, v1.Config{Env: []string{"ARCH=host"}}, layerOf(t, file("arch", 0o644, "host")))
	foreign := imageOf(t, v1.Config{Env: []string{"ARCH=other"}}, layerOf(t, file("arch", 0o644, "other")))
	return mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: foreign, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &hostPlatform}},
	)
}

func TestGetIndexPicksHostPlatform(t *testing.T) {
	requireRoot(t)
	idx := platformIndex(t)
	reg := newRegistry(t)
	nested := t.TempDir()
	p, err := layout.Write(nested, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	flat := t.TempDir()
	if _, err := layout.Write(flat, idx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		reg.pushIndex(t, "test/multi:v1", idx),
		layoutPrefix + nested,
		layoutPrefix + flat,
	} {
		im, err := newStore(t, t.TempDir()).Get(context.Background(), ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if !slices.Equal(im.Env, []string{"ARCH=host"}) {
			t.Errorf("%s: Env = %q; want the host's image", ref, im.Env)
		}
	}
}

func TestGetCachesLayers(t *testing.T) {
	requireRoot(t)
	img := sampleImage(t)
	reg := newRegistry(t)
	ref := reg.push(t, "test/sample:v1", img)
	dir := t.TempDir()
	ctx := context.Background()

	first, err := newStore(t, dir).Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reg.blobs()); n != 3 {
		t.Errorf("first Get fetched %d blobs (%v); want the config and 2 layers", n, reg.blobs())
	}

	// A new store on the same directory, as after a restart.
	s := newStore(t, dir)
	reg.reset()
	again, err := s.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if b := reg.blobs(); len(b) != 0 {
		t.Errorf("second Get of the tag fetched blobs %v; want only the manifest", b)
	}
	if reg.requests.Load() == 0 {
		t.Error("second Get of the tag did not ask the registry; want the tag resolved")
	}
	if !reflect.DeepEqual(first, again) {
		t.Errorf("second Get = %+v; want %+v", again, first)
	}

	reg.reset()
	pinned := reg.host + "/test/sample@" + digestOf(t, img).String()
	if _, err := s.Get(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	if n := reg.requests.Load(); n != 0 {
		t.Errorf("Get by digest of a stored image made %d registry requests; want none", n)
	}

	// A layer that went missing is fetched again.
	if err := os.RemoveAll(first.Layers[1]); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	if _, err := s.Get(ctx, ref); err != nil {
		t.Fatal(err)
	}
	checkTop(t, first.Layers[1])
}

func TestGetConcurrentUnpacksOnce(t *testing.T) {
	requireRoot(t)
	img := sampleImage(t)
	reg := newRegistry(t)
	ref := reg.push(t, "test/sample:v1", img)
	s := newStore(t, t.TempDir())

	const n = 8
	images := make([]*Image, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { images[i], errs[i] = s.Get(context.Background(), ref) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !reflect.DeepEqual(images[i], images[0]) {
			t.Errorf("Get %d = %+v; want %+v", i, images[i], images[0])
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	blobs := reg.blobs()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if blobs[d.String()] != 1 {
			t.Errorf("layer %s fetched %d times by %d concurrent Gets; want once", d, blobs[d.String()], n)
		}
	}
	checkBase(t, images[0].Layers[0])
	checkTop(t, images[0].Layers[1])
}

func TestNewStoreRemovesWorkInProgress(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	s := newStore(t, dir)
	im, err := s.Get(context.Background(), ociRef(t, []v1.Image{sampleImage(t)}))
	if err != nil {
		t.Fatal(err)
	}
	// What a crash in the middle of unpacking and of writing a record leaves.
	crashed := filepath.Join(dir, "layers", tmpPrefix+"0123456789ab-42")
	if err := os.MkdirAll(filepath.Join(crashed, "usr", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, "usr", "bin", "half"), []byte("ha"), 0o755); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "images", tmpPrefix+"17")
	if err := os.WriteFile(half, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	newStore(t, dir)
	for _, p := range []string{crashed, half} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after NewStore: %v; want it removed", p, err)
		}
	}
	for _, l := range im.Layers {
		if !isDir(l) {
			t.Errorf("complete layer %s removed by NewStore", l)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("layers directory mode %o; want 0700, closed to host users", perm)
	}
}

// checkBase checks the unpacked base layer of sampleImage.
func checkBase(t *testing.T, dir string) {
	t.Helper()
	checkFile(t, dir, "bin/tool", 0o755, 0, "#!/bin/sh\necho tool\n")
	checkFile(t, dir, "bin/su", 0o755|fs.ModeSetuid, 0, "setuid")
	checkFile(t, dir, "home/app/data", 0o640, 1000, "user data")
	checkFile(t, dir, "etc/replaced", 0o644, 0, "old")
	checkOwner(t, dir, "home/app", 1000)
	if fi := lstat(t, dir, "home/app"); fi.Mode() != fs.ModeDir|0o750 {
		t.Errorf("home/app mode %v; want drwxr-x---", fi.Mode())
	}
	checkTime(t, dir, "home/app")
	checkTime(t, dir, "bin")
	for name, target := range map[string]string{"bin/sh": "tool", "abs": "/etc/passwd"} {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
			t.Errorf("readlink %s = %q, %v; want %q", name, got, err, target)
		}
		checkTime(t, dir, name)
	}
	if !os.SameFile(lstat(t, dir, "bin/tool"), lstat(t, dir, "bin/tool2")) {
		t.Error("bin/tool2 is not a hard link to bin/tool")
	}
	if fi := lstat(t, dir, "fifo"); fi.Mode() != fs.ModeNamedPipe|0o620 {
		t.Errorf("fifo mode %v; want a named pipe 0620", fi.Mode())
	}
	if _, err := os.Lstat(filepath.Join(dir, "null")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("character device null: %v; want it skipped", err)
	}
}

// checkTop checks the unpacked second layer of sampleImage.
func checkTop(t *testing.T, dir string) {
	t.Helper()
	fi := lstat(t, dir, "etc/gone")
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&fs.ModeCharDevice == 0 || st.Rdev != 0 {
		t.Errorf("etc/gone = %v rdev %d; want an overlayfs whiteout (character device 0/0)", fi.Mode(), st.Rdev)
	}
	checkFile(t, dir, "etc/replaced", 0o600, 0, "new")
	checkFile(t, dir, "opq/new", 0o644, 0, "new")
	if got := xattr(t, filepath.Join(dir, "opq"), "trusted.overlay.opaque"); got != "y" {
		t.Errorf("opq trusted.overlay.opaque = %q; want y", got)
	}
	if got := xattr(t, filepath.Join(dir, "etc"), "trusted.overlay.opaque"); got != "" {
		t.Errorf("etc trusted.overlay.opaque = %q from a tar xattr; want none", got)
	}
	for _, name := range []string{"opq/.wh..wh..opq", "etc/.wh.gone", "opq/old"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v; want absent", name, err)
		}
	}
}

func checkFile(t *testing.T, dir, name string, mode fs.FileMode, uid int, body string) {
	t.Helper()
	fi := lstat(t, dir, name)
	if fi.Mode() != mode {
		t.Errorf("%s mode %v; want %v", name, fi.Mode(), mode)
	}
	checkOwner(t, dir, name, uid)
	checkTime(t, dir, name)
	if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != body {
		t.Errorf("%s = %q, %v; want %q", name, b, err, body)
	}
}

func checkOwner(t *testing.T, dir, name string, id int) {
	t.Helper()
	st := lstat(t, dir, name).Sys().(*syscall.Stat_t)
	if int(st.Uid) != id || int(st.Gid) != id {
		t.Errorf("%s owner %d:%d; want %d:%d", name, st.Uid, st.Gid, id, id)
	}
}

func checkTime(t *testing.T, dir, name string) {
	t.Helper()
	if got := lstat(t, dir, name).ModTime(); !got.Equal(mtime) {
		t.Errorf("%s mtime %v; want %v", name, got, mtime)
	}
}

func lstat(t *testing.T, dir, name string) fs.FileInfo {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func xattr(t *testing.T, p, attr string) string {
	t.Helper()
	b := make([]byte, 64)
	n, err := unix.Lgetxattr(p, attr, b)
	if errors.Is(err, unix.ENODATA) {
		return ""
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, attr, err)
	}
	return string(b[:n])
}

// checkMerged mounts im's layers as the local runtime will, an overlay with a private upper
// layer, in a private mount namespace, and checks what a sandbox would see.
func checkMerged(t *testing.T, im *Image) {
	t.Helper()
	requireOverlay(t)
	lower := slices.Clone(im.Layers)
	slices.Reverse(lower)
	out := runMounted(t, strings.Join(lower, ":"), `
		test ! -e "$M/etc/gone" && echo gone
		ls -A "$M/opq"
		cat "$M/etc/replaced"; echo
		cat "$M/etc/keep"; echo
		stat -c '%u:%g %a' "$M/home/app/data" "$M/bin/su"
		cat "$M/bin/tool2"
	`)
	want := "gone\nnew\nnew\nkept\n1000:1000 640\n0:0 4755\n#!/bin/sh\necho tool\n"
	if out != want {
		t.Errorf("merged view:\n%s\nwant:\n%s", out, want)
	}
}

var overlayProbe = sync.OnceValue(func() error {
	dir, err := os.MkdirTemp("", "overlay-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l1", "l2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	_, err = mounted(dir, filepath.Join(dir, "l2")+":"+filepath.Join(dir, "l1"), "true")
	return err
})

// requireOverlay skips a test when this machine cannot mount an overlay in a private mount
// namespace (no unshare, not root, or overlayfs missing).
func requireOverlay(t *testing.T) {
	t.Helper()
	if err := overlayProbe(); err != nil {
		t.Skipf("cannot mount an overlay with unshare --mount here: %v", err)
	}
}

func runMounted(t *testing.T, lower, script string) string {
	t.Helper()
	out, err := mounted(t.TempDir(), lower, script)
	if err != nil {
		t.Fatalf("overlay: %v", err)
	}
	return out
}

// mounted runs script with $M the overlay of lower (overlayfs order, top first) and a fresh
// upper layer in work, inside a private mount namespace so that nothing outlives it.
func mounted(work, lower, script string) (string, error) {
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return "", err
		}
	}
	cmd := exec.Command("unshare", "--mount", "sh", "-ec",
		`mount -t overlay overlay -o "lowerdir=$L,upperdir=$W/upper,workdir=$W/work" "$W/merged"; M="$W/merged"`+"\n"+script)
	cmd.Env = append(os.Environ(), "L="+lower, "W="+work)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", errors.Join(err, errors.New(stderr.String()))
	}
	return string(out), nil
}

// TestGetRepeatedLayer: an image may hold the same layer twice, which overlayfs would refuse
// as a lower layer; the merged view must still be the image's.
func TestGetRepeatedLayer(t *testing.T) {
	requireRoot(t)
	a := layerOf(t, file("f", 0o644, "a"), file("only-a", 0o644, "a"))
	b := layerOf(t, file("f", 0o644, "b"), file("only-b", 0o644, "b"))
	im, err := newStore(t, t.TempDir()).Get(context.Background(), ociRef(t, []v1.Image{imageOf(t, v1.Config{}, a, b, a)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Layers) != 2 {
		t.Fatalf("Layers = %q; want b then a, once each", im.Layers)
	}
	checkFile(t, im.Layers[0], "f", 0o644, 0, "b")
	checkFile(t, im.Layers[1], "f", 0o644, 0, "a")

	requireOverlay(t)
	lower := im.Layers[1] + ":" + im.Layers[0]
	if out := runMounted(t, lower, `cat "$M/f" "$M/only-a" "$M/only-b"`); out != "aab" {
		t.Errorf("merged f, only-a, only-b = %q; want \"aab\"", out)
	}
}
