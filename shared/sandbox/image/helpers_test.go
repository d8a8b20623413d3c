package image

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// requireRoot skips a test that unpacks layers: chown, whiteout devices and trusted.* xattrs
// need root, which the store needs in production too.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers needs root (chown, mknod, trusted.* xattrs)")
	}
}

// mtime is the modification time of every test entry; the nanoseconds check that sub-second
// precision survives.
var mtime = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

// entry is one tar entry; body is a regular file's content.
type entry struct {
	hdr  tar.Header
	body string
}

func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func file(name string, mode int64, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: body}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func owned(e entry, uid, gid int) entry {
	e.hdr.Uid, e.hdr.Gid = uid, gid
	return e
}

// tarOf writes entries as a PAX tar, so that sub-second times and xattr records survive.
func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func layerOf(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	b := tarOf(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = hostPlatform.OS, hostPlatform.Architecture
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ociRef writes imgs into a new OCI layout, the i-th tagged tags[i] when given, and returns
// its "oci:" reference.
func ociRef(t *testing.T, imgs []v1.Image, tags ...string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		var opts []layout.Option
		if i < len(tags) {
			opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tags[i]}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	return layoutPrefix + dir
}

// archiveRef writes img as a docker-save tarball tagged tag and returns its
// "docker-archive:" reference.
func archiveRef(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(file, parseRef(t, tag), img); err != nil {
		t.Fatal(err)
	}
	return archivePrefix + file
}

func parseRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testRegistry is go-containerregistry's in-memory registry on the loopback, counting what it
// is asked for.
type testRegistry struct {
	host     string
	requests atomic.Int64
	mu       sync.Mutex
	blobGets map[string]int // by digest
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{blobGets: map[string]int{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if _, digest, ok := strings.Cut(req.URL.Path, "/blobs/"); ok && req.Method == http.MethodGet {
			r.mu.Lock()
			r.blobGets[digest]++
			r.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *testRegistry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref := r.host + "/" + repo
	if err := remote.Write(parseRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
	r.reset()
	return ref
}

func (r *testRegistry) pushIndex(t *testing.T, repo string, idx v1.ImageIndex) string {
	t.Helper()
	ref := r.host + "/" + repo
	if err := remote.WriteIndex(parseRef(t, ref), idx); err != nil {
		t.Fatal(err)
	}
	r.reset()
	return ref
}

func (r *testRegistry) reset() {
	r.requests.Store(0)
	r.mu.Lock()
	clear(r.blobGets)
	r.mu.Unlock()
}

// blobs returns how many times each blob was fetched since the last reset.
func (r *testRegistry) blobs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for k, v := range r.blobGets {
		m[k] = v
	}
	return m
}
