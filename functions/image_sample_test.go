package functions

// A sample whose environment is an OCI image runs locally with no Docker engine: the image is
// built in the test from one small layer (a shell, git and the libraries they need, copied
// from this machine, and the repository), served by go-containerregistry's in-process registry,
// pulled and unpacked by the local runtime, and a session and its verifications run in it.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/grading"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// imageRepo is the repository inside the test image: add subtracts; its verifier, a script of
// shell builtins only, writes one JUnit test case per check.
var imageRepo = map[string]string{
	"workspace/repo/calc.sh":            "add() { echo $(( $1 - $2 )); }\nsub() { echo $(( $1 - $2 )); }\n",
	"workspace/repo/tests/test_calc.sh": "check test_sub \"$(sub 3 1)\" 2\n",
	"workspace/repo/tests/run.sh": `. ./calc.sh
report=$1
printf '<testsuites><testsuite name="calc">' > "$report"
check() {
  if [ "$2" = "$3" ]; then printf '<testcase classname="calc" name="%s"/>' "$1"
  else printf '<testcase classname="calc" name="%s"><failure message="%s, not %s"/></testcase>' "$1" "$2" "$3"; fi >> "$report"
}
. tests/test_calc.sh
printf '</testsuite></testsuites>\n' >> "$report"
`,
	"workspace/repo/reports/.keep": "",
}

const imageTestPatch = "diff --git a/tests/test_calc.sh b/tests/test_calc.sh\n--- a/tests/test_calc.sh\n+++ b/tests/test_calc.sh\n" +
	"@@ -1 +1,2 @@\n check test_sub \"$(sub 3 1)\" 2\n+check test_add \"$(add 1 2)\" 3\n"

// imageLayer is a layer holding files (path -> content) and copies of this machine's programs
// with the shared libraries ldd says they load, at the same paths.
func imageLayer(t *testing.T, files map[string]string, programs ...string) v1.Layer {
	t.Helper()
	host := map[string]bool{}
	for _, p := range programs {
		host[p] = true
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			t.Skipf("ldd %s: %v", p, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				host[f] = true
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDirs := func(p string) {
		for d := filepath.Dir(p); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			defer tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
	}
	for p := range host {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		addDirs(p)
		tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))})
		tw.Write(b)
	}
	for p, content := range files {
		addDirs("/" + p)
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return layer
}

// TestImageSampleRunsLocally: a session on an image sample runs in the image's file system, its
// untouched verification fails as FAIL_TO_PASS says, and the fix passes.
func TestImageSampleRunsLocally(t *testing.T) {
	env := newVerifyEnv(t, nil)
	if lrt := env.rt.Runtime.(*local.Runtime); lrt.Mode() != "namespaces" {
		if ciRun() {
			t.Fatal("image samples need namespaces, which CI has")
		}
		t.Skip("image samples need namespaces: " + lrt.Describe())
	}
	// /bin/sh is dash (shell builtins and forks only); git applies the test patch.
	layer := imageLayer(t, imageRepo, "/usr/bin/dash", "/usr/bin/git")
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	// dash as /bin/sh, through a symlink layer of its own.
	var links bytes.Buffer
	tw := tar.NewWriter(&links)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/dash"})
	tw.Close()
	linkLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(links.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, linkLayer); err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/usr/bin:/bin"}, WorkingDir: "/workspace/repo"}); err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/codeset-test/calc:1"
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}

	row, _ := json.Marshal(map[string]any{
		"instance_id": "codeset-test__calc-image-1", "sample_id": "calc-image-1", "repo": "codeset-test/calc",
		"base_commit": "0000000000000000000000000000000000000000", "problem_statement": "add subtracts",
		"patch": "(fix add in calc.sh)", "test_patch": imageTestPatch,
		"FAIL_TO_PASS": []string{"calc::test_add"}, "PASS_TO_PASS": []string{"calc::test_sub"},
		"environment": map[string]any{"image": ref, "work_dir": "/workspace/repo",
			"verifier_command": "sh tests/run.sh reports/junit.xml", "report_format": "junit", "report_paths": []string{"reports/junit.xml"}},
	})
	env.importRows(t, "images", string(row), fstest.MapFS{})
	env.credit("alice")
	sid := env.openSession("alice", "calc-image-1")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)

	// The session's root is the image's: its files, not the host's.
	if code, out, errOut := env.exec("alice", sid, "pwd; . ./calc.sh; add 1 2; echo /usr/bin/*; test -e /usr/bin/python3 || echo no-python"); code != 0 ||
		out != "/workspace/repo\n-1\n/usr/bin/dash /usr/bin/git\nno-python\n" {
		t.Fatalf("in the image: %d %q %q", code, out, errOut)
	}
	j := env.verify("alice", sid)
	if j.Status != events.JobCompleted || j.Result.IsSuccess || fmt.Sprint(j.Result.FailToPassFailed) != "[calc::test_add]" {
		t.Fatalf("untouched: %s", j.raw)
	}
	env.expect(http.StatusOK, "alice", "POST", "/sessions/"+sid+"/str_replace", map[string]any{
		"file_path": "calc.sh", "str_to_replace": "add() { echo $(( $1 - $2 ))", "str_to_insert": "add() { echo $(( $1 + $2 ))"}, nil)
	j = env.verify("alice", sid)
	if j.Status != events.JobCompleted || !j.Result.IsSuccess || j.Result.Resolution != string(grading.ResolvedFull) {
		t.Fatalf("fixed: %s", j.raw)
	}
}
