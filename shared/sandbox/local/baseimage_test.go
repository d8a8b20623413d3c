package local_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// dashImage writes, as an OCI layout, an image holding only dash (as /bin/sh) and the libraries
// it loads, copied from this machine, and returns its reference.
func dashImage(t *testing.T) string {
	t.Helper()
	files := []string{"/usr/bin/dash"}
	out, err := exec.Command("ldd", "/usr/bin/dash").Output()
	if err != nil {
		t.Skipf("ldd: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(f); d != "/"; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				defer tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755})
			}
		}
		tw.WriteHeader(&tar.Header{Name: f[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/dash"})
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/usr/bin:/bin"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir
}

// TestArchiveSampleOnABaseImage: with a base image configured, a sample that has an archive runs
// on the image's root, with its repository at its place, and the oracle grades it there too.
func TestArchiveSampleOnABaseImage(t *testing.T) {
	probe := newRuntime(t, t.TempDir(), local.Auto)
	if probe.Mode() != local.Namespaces {
		t.Skip("a base image needs namespaces: " + probe.Describe())
	}
	base := dashImage(t)
	r, err := local.New(local.Options{DataDir: t.TempDir(), Binary: binary, Ephemeral: true, BaseImage: base})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Describe(), "on the base image "+base) {
		t.Errorf("describe: %s", r.Describe())
	}
	sp := spec("ses_base", archive(t))
	info := started(t, r, "ses_base", sp.Env.Archive)
	res := mustExec(t, r.Client(info), "pwd; read line < pkg/hello.txt; echo $line; echo /usr/bin/*; test -e /usr/bin/git || echo no-git")
	if res.Stdout != "/workspace/repo\nhello from the sample\n/usr/bin/dash\nno-git\n" {
		t.Fatalf("on the base image: %+v", res)
	}
	mustExec(t, r.Client(info), "echo fixed > pkg/hello.txt")
	// (A glob: a file the verifier's command names is the verifier's own, and protected.)
	v, err := sandbox.Verify(context.Background(), r, info, sp, sandbox.VerifyRequest{Command: "for f in pkg/*; do read l < $f; echo $l; done", Timeout: time.Minute})
	if err != nil || v.Stdout != "fixed\n" {
		t.Fatalf("the oracle on the base image: %+v %v", v, err)
	}
}
