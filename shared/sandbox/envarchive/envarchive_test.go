package envarchive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox/envarchive"
)

type entry struct {
	name, body, link string
	typ              byte
}

// archive packs entries as a tar.gz.
func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size, h.Mode = 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func refOf(t *testing.T, b []byte) blob.Ref {
	h := blob.NewHashing(bytes.NewReader(b))
	if _, err := h.Read(make([]byte, len(b)+1)); err != nil {
		t.Fatal(err)
	}
	return h.Ref()
}

// serve answers every GET with body, as a signed URL of the bucket would, counting requests.
func serve(t *testing.T, body []byte, fails int) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= int64(fails) {
			http.Error(w, "backend error", http.StatusServiceUnavailable)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/sha256/x?X-Goog-Signature=secret", &n
}

var repo = []entry{
	{name: "repo/", typ: tar.TypeDir},
	{name: "repo/.git/", typ: tar.TypeDir},
	{name: "repo/.git/HEAD", body: "ref: refs/heads/main\n"},
	{name: "repo/calc.py", body: "def add(a, b): return a - b\n"},
	{name: "repo/pkg/", typ: tar.TypeDir},
	{name: "repo/pkg/link.py", typ: tar.TypeSymlink, link: "../calc.py"},
}

// TestFetch: the archive is downloaded, checked and unpacked, and its repository (packed under a
// folder of its own) is the work dir.
func TestFetch(t *testing.T) {
	t.Parallel()
	b := archive(t, repo...)
	url, n := serve(t, b, 1) // a 503 first: tried again
	wd := filepath.Join(t.TempDir(), "workspace", "repo")
	if err := envarchive.Fetch(context.Background(), nil, url, refOf(t, b), wd); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(wd, "calc.py"))
	if err != nil || string(got) != "def add(a, b): return a - b\n" {
		t.Fatalf("calc.py: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(wd, ".git", "HEAD")); err != nil {
		t.Errorf("the repository's .git: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(wd, "pkg", "link.py")); err != nil || l != "../calc.py" {
		t.Errorf("symlink: %q %v", l, err)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2 (a failure, then the archive)", n.Load())
	}
	entries, _ := os.ReadDir(filepath.Dir(wd))
	if len(entries) != 1 {
		t.Errorf("beside the work dir: %v (the staging directory was left)", entries)
	}
}

// TestFetchRefusesOtherBytes: bytes that are not the digest's (another archive, a truncated or
// longer one) leave no work dir, and are not downloaded again.
func TestFetchRefusesOtherBytes(t *testing.T) {
	t.Parallel()
	good := archive(t, repo...)
	other := archive(t, append(repo, entry{name: "repo/evil.py", body: "import os\n"})...)
	for name, body := range map[string][]byte{"other": other, "truncated": good[:len(good)-3], "longer": append(append([]byte{}, good...), 0)} {
		url, n := serve(t, body, 0)
		wd := filepath.Join(t.TempDir(), "repo")
		err := envarchive.Fetch(context.Background(), nil, url, refOf(t, good), wd)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name != "truncated" && !errors.Is(err, blob.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the URL's signature: %v", name, err)
		}
		if _, serr := os.Stat(wd); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: a work dir was left: %v", name, serr)
		}
		if name == "other" && n.Load() != 1 {
			t.Errorf("%s: downloaded %d times", name, n.Load())
		}
	}
}

// TestUnpackStaysInside: entries that would leave the destination, directly or through a
// symlink the archive planted, are refused.
func TestUnpackStaysInside(t *testing.T) {
	t.Parallel()
	cases := map[string][]entry{
		"dotdot":   {{name: "../escape", body: "x"}},
		"absolute": {{name: "/tmp/escape", body: "x"}},
		"symlink":  {{name: "out", typ: tar.TypeSymlink, link: "/tmp"}, {name: "out/escape", body: "x"}},
		"hardlink": {{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}},
	}
	for name, entries := range cases {
		dest := filepath.Join(t.TempDir(), "d")
		os.Mkdir(dest, 0o755)
		err := envarchive.Unpack(bytes.NewReader(archive(t, entries...)), name, dest)
		if err == nil {
			t.Errorf("%s: unpacked", name)
		}
		if _, serr := os.Stat(filepath.Join(filepath.Dir(dest), "escape")); serr == nil {
			t.Errorf("%s: wrote outside", name)
		}
	}
}

// TestFetchIntoAFullWorkDir: a work dir that holds files already is not replaced.
func TestFetchIntoAFullWorkDir(t *testing.T) {
	t.Parallel()
	b := archive(t, repo...)
	url, _ := serve(t, b, 0)
	wd := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(wd, 0o755)
	os.WriteFile(filepath.Join(wd, "keep"), nil, 0o644)
	if err := envarchive.Fetch(context.Background(), nil, url, refOf(t, b), wd); err == nil {
		t.Fatal("unpacked over a work dir with files in it")
	}
	if _, err := os.Stat(filepath.Join(wd, "keep")); err != nil {
		t.Error(err)
	}
}
