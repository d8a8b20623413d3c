package dataset

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
)

func goodRow() map[string]any {
	return map[string]any{
		"instance_id": "org__proj-1", "repo": "org/proj", "base_commit": "abc", "patch": "p", "test_patch": "tp",
		"problem_statement": "ps", "FAIL_TO_PASS": `["a"]`, "PASS_TO_PASS": []string{"b"},
		"environment": map[string]any{"image": "img", "work_dir": "/testbed", "verifier_command": "pytest -rA", "report_format": "pytest-rA"},
	}
}

func line(t *testing.T, row map[string]any) string {
	raw, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// An image is recorded as the row names it: a registry's reference (by digest, as
// scripts/sandbox-image.sh prints it, or by tag), or a local runtime's.
func TestParseImageReferences(t *testing.T) {
	for _, ref := range []string{
		"registry.example/proj/samples/calc@sha256:" + strings.Repeat("ab", 32),
		"localhost:5000/calc:v1", "calc", "oci:/images/calc:v1", "docker-archive:calc.tar",
	} {
		row := goodRow()
		row["environment"].(map[string]any)["image"] = ref
		rows, bad, err := Parse(strings.NewReader(line(t, row)), fstest.MapFS{})
		if err != nil || len(bad) != 0 || rows[0].Content.Environment.Image != ref {
			t.Errorf("%s: %v %v", ref, bad, err)
		}
	}
}

func TestParseGoodRow(t *testing.T) {
	row := goodRow()
	row["FAIL_TO_FAIL"] = []string{"c"}
	rows, bad, err := Parse(strings.NewReader("\n"+line(t, row)+"\n"), fstest.MapFS{})
	if err != nil || len(bad) != 0 || len(rows) != 1 {
		t.Fatalf("%v %v %v", rows, bad, err)
	}
	c := rows[0].Content
	if rows[0].Line != 2 || c.SampleID != "org__proj-1" || c.Language != "unknown" || c.Verifier != "test_suite" ||
		strings.Join(c.FailToPass, ",") != "a" || strings.Join(c.PassToPass, ",") != "b" || strings.Join(c.FailToFail, ",") != "c" ||
		c.Environment.WorkDir != "/testbed" || c.Environment.ReportFormat != "pytest-rA" {
		t.Fatalf("parsed %+v", rows[0])
	}
}

// A row without protected_paths gets the defaults; one with them, exactly its own ([] is none).
func TestParseProtectedPaths(t *testing.T) {
	for _, c := range []struct {
		given any
		want  []string
	}{{nil, DefaultProtectedPaths}, {[]string{}, nil}, {[]string{"spec/**", "Makefile"}, []string{"spec/**", "Makefile"}}} {
		row := goodRow()
		if c.given != nil {
			row["environment"].(map[string]any)["protected_paths"] = c.given
		}
		rows, bad, err := Parse(strings.NewReader(line(t, row)), fstest.MapFS{})
		if err != nil || len(bad) != 0 {
			t.Fatalf("%v %v", bad, err)
		}
		if got := rows[0].Content.Environment.ProtectedPaths; strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("protected_paths %v: got %v, want %v", c.given, got, c.want)
		}
	}
}

// Every bad row names its line and the field at fault.
func TestParseBadRows(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(r map[string]any)
		field string
		msg   string
	}{
		{"missing instance_id", func(r map[string]any) { delete(r, "instance_id") }, "instance_id", "is required"},
		{"patch not a string", func(r map[string]any) { r["patch"] = 3 }, "patch", "must be a string"},
		{"empty problem", func(r map[string]any) { r["problem_statement"] = " " }, "problem_statement", "must not be empty"},
		{"list not a list", func(r map[string]any) { r["FAIL_TO_PASS"] = "a, b" }, "FAIL_TO_PASS", "JSON array of strings"},
		{"list of numbers", func(r map[string]any) { r["PASS_TO_PASS"] = []int{1} }, "PASS_TO_PASS", "JSON array of strings"},
		{"missing list", func(r map[string]any) { delete(r, "PASS_TO_PASS") }, "PASS_TO_PASS", "is required"},
		{"empty test name", func(r map[string]any) { r["FAIL_TO_PASS"] = []string{""} }, "FAIL_TO_PASS", "empty test name"},
		{"test in two lists", func(r map[string]any) { r["PASS_TO_PASS"] = []string{"a"} }, "FAIL_TO_PASS", "more than one"},
		{"bad verifier", func(r map[string]any) { r["verifier"] = "vibes" }, "verifier", "not one of"},
		{"sample id with slash", func(r map[string]any) { r["sample_id"] = "a/b" }, "sample_id", "cannot be a sample id"},
		{"no environment", func(r map[string]any) { delete(r, "environment") }, "environment", "is required"},
		{"environment not an object", func(r map[string]any) { r["environment"] = "docker" }, "environment", "must be an object"},
		{"unknown environment field", func(r map[string]any) { r["environment"].(map[string]any)["dockerfile"] = "x" }, "environment.dockerfile", "not a field"},
		{"no verifier command", func(r map[string]any) { delete(r["environment"].(map[string]any), "verifier_command") }, "environment.verifier_command", "is required"},
		{"bad report format", func(r map[string]any) { r["environment"].(map[string]any)["report_format"] = "tap" }, "environment.report_format", "not one of"},
		{"junit without paths", func(r map[string]any) { r["environment"].(map[string]any)["report_format"] = "junit" }, "environment.report_paths", "is required"},
		{"report path escapes", func(r map[string]any) {
			r["environment"].(map[string]any)["report_paths"] = []string{"../x.xml"}
		}, "environment.report_paths", "relative path"},
		{"protected path escapes", func(r map[string]any) {
			r["environment"].(map[string]any)["protected_paths"] = []string{"tests/**", "../x"}
		}, "environment.protected_paths", `"../x"`},
		{"protected paths not a list", func(r map[string]any) { r["environment"].(map[string]any)["protected_paths"] = "tests" }, "environment.protected_paths", "array of strings"},
		{"bad image reference", func(r map[string]any) { r["environment"].(map[string]any)["image"] = "Europe-Docker/UPPER case:1" }, "environment.image", "is not an image reference"},
		{"nothing to run in", func(r map[string]any) { delete(r["environment"].(map[string]any), "image") }, "environment", "needs an image"},
		{"missing archive", func(r map[string]any) {
			r["environment"] = map[string]any{"archive": "nope.tar.gz", "work_dir": "repo", "verifier_command": "x", "report_format": "pytest-rA"}
		}, "environment.archive", "is not a file"},
		{"archive outside", func(r map[string]any) {
			r["environment"] = map[string]any{"archive": "../x.tar.gz", "work_dir": "repo", "verifier_command": "x", "report_format": "pytest-rA"}
		}, "environment.archive", "relative path inside"},
		{"two sources", func(r map[string]any) {
			r["environment"] = map[string]any{"archive": "a.tar.gz", "source_dir": "src", "verifier_command": "x", "report_format": "pytest-rA"}
		}, "environment", "not several"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := goodRow()
			c.edit(row)
			_, bad, err := Parse(strings.NewReader(line(t, goodRow())+"\n"+line(t, row)+"\n"), fstest.MapFS{})
			if err != nil || len(bad) != 1 {
				t.Fatalf("%v %v", bad, err)
			}
			if bad[0].Line != 2 || bad[0].Field != c.field || !strings.Contains(bad[0].Msg, c.msg) {
				t.Fatalf("got %q; want line 2, field %s, %q", bad[0].Error(), c.field, c.msg)
			}
		})
	}
}

func TestParseDuplicatesAndGarbage(t *testing.T) {
	r := goodRow()
	_, bad, err := Parse(strings.NewReader(line(t, r)+"\n[1,2]\n"+line(t, r)+"\n"), fstest.MapFS{})
	if err != nil || len(bad) != 2 || bad[0].Error() != "line 2: not a JSON object" ||
		bad[1].Error() != `line 3: field sample_id: "org__proj-1" is already the sample of line 1` {
		t.Fatalf("%v %v", bad, err)
	}
}

func TestReadFileGzipAndSourceDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src", "pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "pkg", "a.txt"), []byte("hello\n"), 0o644)
	row := goodRow()
	row["environment"] = map[string]any{"source_dir": "src", "verifier_command": "true", "report_format": "junit", "report_paths": []string{"r.xml"}}
	// gzip the file: ReadFile tells by content, not by name.
	var gz strings.Builder
	gz.WriteString(line(t, row) + "\n")
	p := filepath.Join(dir, "rows.jsonl.gz")
	writeGzip(t, p, gz.String())
	rows, bad, err := ReadFile(p)
	if err != nil || len(bad) != 0 || len(rows) != 1 {
		t.Fatalf("%v %v %v", rows, bad, err)
	}
	if string(rows[0].SourceFiles["pkg/a.txt"]) != "hello\n" || rows[0].Content.Environment.WorkDir != DefaultWorkDir {
		t.Fatalf("source files %v, work dir %q", rows[0].SourceFiles, rows[0].Content.Environment.WorkDir)
	}
	// base_commit "abc" is not what the tree commits to: Prepare names the field.
	store, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingStore{Store: store}
	b := &Blobs{Store: counted}
	ctx := context.Background()
	rerr := b.Prepare(ctx, &rows[0])
	if rerr == nil || rerr.Field != "base_commit" || !strings.Contains(rerr.Msg, "work tree built from") {
		t.Fatalf("prepare with a wrong base_commit: %v", rerr)
	}
	if counted.puts != 0 {
		t.Fatal("a wrong base_commit stored an archive")
	}

	// At its commit, the tree is stored in the blob store and the row records its reference.
	rows[0].Content.BaseCommit = rerr.Msg[strings.LastIndex(rerr.Msg, " ")+1:]
	if rerr := b.Prepare(ctx, &rows[0]); rerr != nil {
		t.Fatal(rerr)
	}
	env := rows[0].Content.Environment
	if env.ArchiveRef == nil || env.Archive != "" || rows[0].Content.EnvironmentDigest != "git-"+rows[0].Content.BaseCommit || counted.puts != 1 {
		t.Fatalf("prepared: %+v, digest %q, %d puts", env, rows[0].Content.EnvironmentDigest, counted.puts)
	}
	raw, err := blob.ReadAll(ctx, store, blob.Ref{Digest: env.ArchiveRef.Digest, Size: env.ArchiveRef.Size})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for tr := tar.NewReader(zr); ; {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
	}
	if !names["repo/pkg/a.txt"] || !names["repo/.git/HEAD"] {
		t.Errorf("the archive holds %v", names)
	}

	// Built again (other bytes: git's index holds file times), a known environment is not
	// stored again and keeps its reference.
	again := &Blobs{Store: counted, Known: map[string]events.BlobRef{rows[0].Content.EnvironmentDigest: *env.ArchiveRef}}
	rows[0].Content.Environment.ArchiveRef = nil
	if rerr := again.Prepare(ctx, &rows[0]); rerr != nil || counted.puts != 1 || *rows[0].Content.Environment.ArchiveRef != *env.ArchiveRef {
		t.Fatalf("a known environment: %v, %d puts, %+v", rerr, counted.puts, rows[0].Content.Environment.ArchiveRef)
	}
}

// countingStore counts what is stored.
type countingStore struct {
	blob.Store
	puts int
}

func (c *countingStore) Put(ctx context.Context, r io.Reader) (blob.Ref, error) {
	c.puts++
	return c.Store.Put(ctx, r)
}

// The same files always commit to the same base_commit; any change moves it.
func TestBuildRepoDeterministic(t *testing.T) {
	ctx := context.Background()
	files := map[string][]byte{"go.mod": []byte("module x\n"), "x/x.go": []byte("package x\n")}
	c1, err := BuildRepo(ctx, files, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := BuildRepo(ctx, files, filepath.Join(t.TempDir(), "repo"))
	files["x/x.go"] = []byte("package x // changed\n")
	c3, _ := BuildRepo(ctx, files, filepath.Join(t.TempDir(), "repo"))
	if c1 != c2 || c1 == c3 || len(c1) != 40 {
		t.Fatalf("commits %s %s %s", c1, c2, c3)
	}
	if _, err := BuildRepo(ctx, map[string][]byte{".git/config": nil}, t.TempDir()); err == nil {
		t.Fatal("a .git path was accepted")
	}
}

func TestParseTxtar(t *testing.T) {
	files, err := ParseTxtar([]byte("comment\n-- a.txt --\none\ntwo\n-- dir/empty --\n-- b --\nlast"))
	if err != nil || string(files["a.txt"]) != "one\ntwo\n" || len(files["dir/empty"]) != 0 || string(files["b"]) != "last" || len(files) != 3 {
		t.Fatalf("%q %v", files, err)
	}
	for _, bad := range []string{"-- ../x --\n", "-- a --\n-- a --\n", "-- /abs --\n"} {
		if _, err := ParseTxtar([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func writeGzip(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(text))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
