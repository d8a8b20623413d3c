package functions

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/demo"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/dataset"
	"github.com/codeset/codeset/shared/httpapi"
)

// catalogAuth accepts the one bearer token "reader": the catalog tests' caller, without identity.
type catalogAuth struct{}

func (catalogAuth) Authenticate(ctx context.Context, r *http.Request) (app.Principal, error) {
	if r.Header.Get("Authorization") != "Bearer reader" {
		return app.Principal{}, httpapi.Unauthorized("bad or missing bearer token")
	}
	return app.Principal{UserID: "reader"}, nil
}

type catalogHarness struct {
	t   testing.TB
	a   *app.App
	url string // where it is served
}

// newCatalogHarness opens an embedded App on a fresh data dir (tune may change the config) and
// serves it.
func newCatalogHarness(t testing.TB, tune func(*config.Config)) *catalogHarness {
	t.Helper()
	a := openApp(t, appSpec{Tune: tune, Auth: catalogAuth{}, Serve: true})
	return &catalogHarness{t: t, a: a.App, url: a.URL}
}

// get fetches path under /api/v1 (as "reader" when auth) and returns the status, headers and body.
func (h *catalogHarness) get(path string, auth bool) (int, http.Header, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+app.Prefix+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer reader")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func (h *catalogHarness) list(query string) sampleListView {
	h.t.Helper()
	status, _, body := h.get("/samples"+query, false)
	if status != http.StatusOK {
		h.t.Fatalf("GET /samples%s: %d %s", query, status, body)
	}
	var out sampleListView
	if err := json.Unmarshal(body, &out); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func sampleIDs(v sampleListView) string {
	var out []string
	for _, s := range v.Samples {
		out = append(out, s.SampleID)
	}
	return strings.Join(out, ",")
}

// TestCatalogEndpoints drives the three catalog operations over HTTP on the demo dataset.
func TestCatalogEndpoints(t *testing.T) {
	t.Parallel()
	h := newCatalogHarness(t, nil)
	testCatalogEndpoints(t, h)
}

// TestCatalogEndpointsGCP is TestCatalogEndpoints on the GCP backend (Firestore and Pub/Sub
// emulators), and the version rules with it.
func TestCatalogEndpointsGCP(t *testing.T) {
	t.Run("endpoints", func(t *testing.T) { testCatalogEndpoints(t, newCatalogHarnessGCP(t)) })
	t.Run("versions", func(t *testing.T) { testImportVersions(t, newCatalogHarnessGCP(t)) })
}

// newCatalogHarnessGCP opens the App on the GCP backend behind a server that Pub/Sub pushes to.
func newCatalogHarnessGCP(t *testing.T) *catalogHarness {
	t.Helper()
	a := openApp(t, appSpec{Backend: "gcp", Auth: catalogAuth{}})
	return &catalogHarness{t: t, a: a.App, url: a.URL}
}

func testCatalogEndpoints(t *testing.T, h *catalogHarness) {
	ctx := context.Background()
	h.a.Config.NoDemo = false
	start := time.Now()
	if err := loadDemo(ctx, h.a); err != nil {
		t.Fatal(err)
	}
	t.Logf("demo loaded in %v", time.Since(start))
	// A second start loads nothing more.
	v, _ := h.a.Events.Version(ctx, events.DatasetStream(demo.Name))
	if err := loadDemo(ctx, h.a); err != nil {
		t.Fatal(err)
	}
	if v2, _ := h.a.Events.Version(ctx, events.DatasetStream(demo.Name)); v2 != v || v != 7 {
		t.Fatalf("demo stream at %d then %d, want 7 both times", v, v2)
	}

	status, _, body := h.get("/datasets", false)
	var datasets []map[string]any
	if err := json.Unmarshal(body, &datasets); status != http.StatusOK || err != nil {
		t.Fatalf("GET /datasets: %d %s", status, body)
	}
	if len(datasets) != 1 || datasets[0]["name"] != "demo" || datasets[0]["sample_count"] != float64(6) ||
		datasets[0]["description"] != demo.Description || datasets[0]["created_at"] == nil {
		t.Fatalf("datasets: %s", body)
	}

	all := h.list("")
	const order = "go-lru-1,go-roman-1,go-wordwrap-1,py-duration-1,py-envfile-1,sh-semver-1"
	if sampleIDs(all) != order || all.TotalCount != 6 || all.HasMore || all.Page != 1 || all.PageSize != 6 {
		t.Fatalf("all samples: %s total %d has_more %v page %d size %d", sampleIDs(all), all.TotalCount, all.HasMore, all.Page, all.PageSize)
	}
	for _, s := range all.Samples {
		if !s.Latest || s.Version != 1 || s.Dataset != "demo" || s.BaseCommit == "" || s.Patch == "" || s.TestPatch == "" ||
			len(s.FailToPass) == 0 || len(s.PassToPass) == 0 || s.FailToFail == nil || s.Verifier != "test_suite" || s.CreatedAt.IsZero() {
			t.Errorf("incomplete sample %+v", s)
		}
	}
	// Every field the spec requires is present in the JSON.
	_, _, raw := h.get("/samples", false)
	var generic struct{ Samples []map[string]any }
	json.Unmarshal(raw, &generic)
	for _, f := range []string{"sample_id", "language", "verifier", "instance_id", "repo", "base_commit", "patch", "non_code_patch", "test_patch", "problem_statement", "hints_text", "environment_setup_commit", "fail_to_pass", "pass_to_pass", "fail_to_fail"} {
		if _, ok := generic.Samples[0][f]; !ok {
			t.Errorf("sample JSON lacks %q", f)
		}
	}

	pages := []struct {
		query, ids    string
		more          bool
		page, size, n int
	}{
		{"?page=1&page_size=2", "go-lru-1,go-roman-1", true, 1, 2, 6},
		{"?page=2&page_size=2", "go-wordwrap-1,py-duration-1", true, 2, 2, 6},
		{"?page=3&page_size=2", "py-envfile-1,sh-semver-1", false, 3, 2, 6},
		{"?page=4&page_size=2", "", false, 4, 2, 6},
		{"?page_size=4", "go-lru-1,go-roman-1,go-wordwrap-1,py-duration-1", true, 1, 4, 6},
		{"?page=2", "", false, 2, 100, 6},
		{"?search=ROMAN", "go-roman-1", false, 1, 1, 1},
		{"?search=codeset-DEMO__", order, false, 1, 6, 6},
		{"?search=nothing-like-it", "", false, 1, 0, 0},
		{"?search=r&page=2&page_size=2", "go-wordwrap-1,py-duration-1", true, 2, 2, 5}, // all but envfile
		{"?dataset=demo&page=1&page_size=100", order, false, 1, 100, 6},
		{"?dataset=nope", "", false, 1, 0, 0},
	}
	t.Logf("first listings done at %v", time.Since(start))
	for _, p := range pages {
		got := h.list(p.query)
		if sampleIDs(got) != p.ids || got.HasMore != p.more || got.Page != p.page || got.PageSize != p.size || got.TotalCount != p.n {
			t.Errorf("%s: got %s more=%v page=%d size=%d total=%d; want %s more=%v page=%d size=%d total=%d",
				p.query, sampleIDs(got), got.HasMore, got.Page, got.PageSize, got.TotalCount, p.ids, p.more, p.page, p.size, p.n)
		}
	}
	for _, bad := range []struct{ query, field string }{
		{"?page_size=101", "page_size"}, {"?page_size=0", "page_size"}, {"?page=0&page_size=2", "page"},
		{"?page=x", "page"}, {"?page_size=1.5", "page_size"},
	} {
		status, _, body := h.get("/samples"+bad.query, false)
		var e struct {
			Detail []httpapi.FieldError `json:"detail"`
		}
		if json.Unmarshal(body, &e); status != http.StatusUnprocessableEntity || len(e.Detail) != 1 || fmt.Sprint(e.Detail[0].Loc) != "[query "+bad.field+"]" {
			t.Errorf("%s: %d %s; want 422 at query.%s", bad.query, status, body, bad.field)
		}
	}

	t.Logf("listings done at %v", time.Since(start))
	// Download: authenticated, gzipped JSON with a file name.
	if status, _, _ := h.get("/samples/demo/go-lru-1/download", false); status != http.StatusUnauthorized {
		t.Errorf("download without a token: %d, want 401", status)
	}
	for _, q := range []string{"", "?version=1"} {
		status, hdr, body := h.get("/samples/demo/go-lru-1/download"+q, true)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/gzip" || !strings.Contains(hdr.Get("Content-Disposition"), `filename="demo__go-lru-1__v1.json.gz"`) {
			t.Fatalf("download%s: %d %v", q, status, hdr)
		}
		var doc map[string]any
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			err = json.NewDecoder(zr).Decode(&doc)
		}
		if err != nil {
			t.Fatalf("download%s is not gzipped JSON: %v", q, err)
		}
		env, _ := doc["environment"].(map[string]any)
		if doc["sample_id"] != "go-lru-1" || doc["version"] != float64(1) || doc["latest"] != true || env["work_dir"] != "repo" ||
			env["report_format"] != "go-test-json" || env["archive"] != nil || doc["problem_statement"] == "" {
			t.Errorf("downloaded %v", doc)
		}
	}
	for _, c := range []struct {
		path   string
		status int
		detail string
	}{
		{"/samples/demo/nope/download", 404, `sample "nope" in dataset "demo" not found`},
		{"/samples/nope/go-lru-1/download", 404, `dataset "nope" not found`},
		{"/samples/demo/go-lru-1/download?version=2", 404, `version 2 of sample "go-lru-1" in dataset "demo" not found`},
		{"/samples/demo/go-lru-1/download?version=0", 404, `version 0 of sample "go-lru-1" in dataset "demo" not found`},
		{"/samples/demo/nope/download?version=0", 404, `sample "nope" in dataset "demo" not found`},
		{"/samples/demo/go-lru-1/download?version=x", 422, ""},
	} {
		status, _, body := h.get(c.path, true)
		var e struct {
			Detail any `json:"detail"`
		}
		json.Unmarshal(body, &e)
		if status != c.status || (c.detail != "" && e.Detail != c.detail) {
			t.Errorf("%s: %d %s; want %d %q", c.path, status, body, c.status, c.detail)
		}
	}

	// The archive a sandbox unpacks is in the App's blob store (the data dir, or the bucket).
	s, err := projections.Sample(ctx, h.a.Docs, "demo", "py-envfile-1")
	if err != nil {
		t.Fatal(err)
	}
	ref := s.Environment.ArchiveRef
	if ref == nil || s.Environment.Archive != "" {
		t.Fatalf("the sample's environment: %+v", s.Environment)
	}
	if b, err := blob.ReadAll(ctx, h.a.Blobs, blob.Ref{Digest: ref.Digest, Size: ref.Size}); err != nil || len(b) == 0 {
		t.Errorf("environment archive %s: %d bytes, %v", ref.Digest, len(b), err)
	}
}

// writeJSONL writes rows (each a map) as a JSONL file in dir and returns its path.
func writeJSONL(t testing.TB, dir, name string, rows ...any) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		if s, ok := r.(string); ok {
			b.WriteString(s + "\n")
			continue
		}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(raw, '\n'))
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testRow(id, patch string) map[string]any {
	return map[string]any{
		"instance_id": "org__proj-" + id, "repo": "org/proj", "base_commit": "abc123", "patch": patch,
		"test_patch": "diff --git a/t b/t\n", "problem_statement": "It breaks.", "hints_text": "",
		"FAIL_TO_PASS": `["test_a"]`, "PASS_TO_PASS": []string{"test_b"}, "language": "python",
		"environment": map[string]any{"image": "registry.invalid/proj:" + id, "work_dir": "/testbed",
			"verifier_command": "pytest -rA", "report_format": "pytest-rA"},
	}
}

func importFile(t *testing.T, a *app.App, file, name string, skip bool) (ImportResult, error) {
	t.Helper()
	rows, invalid, err := dataset.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return ImportDataset(context.Background(), a, rows, invalid, ImportOptions{Dataset: name, Description: "test set", SkipInvalid: skip})
}

// TestImportVersions: changed content is a new version (the latest), the same content nothing.
func TestImportVersions(t *testing.T) { testImportVersions(t, newCatalogHarness(t, nil)) }

func testImportVersions(t *testing.T, h *catalogHarness) {
	ctx, dir := context.Background(), t.TempDir()
	first := writeJSONL(t, dir, "v1.jsonl", testRow("1", "p1"), testRow("2", "p2"), testRow("3", "p3"))
	res, err := importFile(t, h.a, first, "set", false)
	if err != nil || res.New != 3 || res.Versioned != 0 || res.Unchanged != 0 {
		t.Fatalf("first import: %+v %v", res, err)
	}
	v1, _ := h.a.Events.Version(ctx, events.DatasetStream("set"))
	res, err = importFile(t, h.a, first, "set", false)
	if err != nil || res.New != 0 || res.Versioned != 0 || res.Unchanged != 3 {
		t.Fatalf("same import again: %+v %v", res, err)
	}
	if v, _ := h.a.Events.Version(ctx, events.DatasetStream("set")); v != v1 {
		t.Fatalf("importing the same content appended events: stream %d -> %d", v1, v)
	}
	changed := testRow("2", "p2 fixed")
	changed["FAIL_TO_PASS"] = []string{"test_a", "test_c"}
	second := writeJSONL(t, dir, "v2.jsonl", testRow("1", "p1"), changed, testRow("3", "p3"))
	res, err = importFile(t, h.a, second, "set", false)
	if err != nil || res.New != 0 || res.Versioned != 1 || res.Unchanged != 2 {
		t.Fatalf("changed import: %+v %v", res, err)
	}
	all := h.list("?dataset=set")
	if all.TotalCount != 3 {
		t.Fatalf("listing after a new version: %d samples, want 3 (latest only)", all.TotalCount)
	}
	s := all.Samples[1]
	if s.SampleID != "org__proj-2" || s.Version != 2 || !s.Latest || s.Patch != "p2 fixed" || *s.VersionDescription != "changed: fail_to_pass, patch" {
		t.Fatalf("new version listed as %+v", s)
	}
	old, err := projections.SampleVersion(ctx, h.a.Docs, "set", "org__proj-2", 1)
	if err != nil || old.Latest || old.Patch != "p2" {
		t.Fatalf("version 1 after version 2: %+v %v", old, err)
	}
	_, _, body := h.get("/samples/set/org__proj-2/download?version=1", true)
	zr, _ := gzip.NewReader(bytes.NewReader(body))
	var doc map[string]any
	json.NewDecoder(zr).Decode(&doc)
	if doc["latest"] != false || doc["patch"] != "p2" {
		t.Fatalf("download of version 1: %v", doc)
	}
	status, _, body := h.get("/datasets", false)
	if status != 200 || !strings.Contains(string(body), `"sample_count":3`) {
		t.Fatalf("datasets after versions: %s", body)
	}
	// Going back to the first content is a change too: version 3.
	if res, err = importFile(t, h.a, first, "set", false); err != nil || res.Versioned != 1 {
		t.Fatalf("reverting import: %+v %v", res, err)
	}
	if s, _ := projections.Sample(ctx, h.a.Docs, "set", "org__proj-2"); s.Version != 3 || s.Patch != "p2" {
		t.Fatalf("after revert: v%d %q", s.Version, s.Patch)
	}
}

// TestImportInvalidRows: a bad row names its line and field and stops the import, unless
// SkipInvalid, which imports the others.
func TestImportInvalidRows(t *testing.T) {
	t.Parallel()
	h := newCatalogHarness(t, nil)
	ctx, dir := context.Background(), t.TempDir()
	noEnv := testRow("3", "p")
	delete(noEnv, "environment")
	badList := testRow("2", "p")
	badList["PASS_TO_PASS"] = "not a list"
	file := writeJSONL(t, dir, "bad.jsonl", testRow("1", "p"), badList, "", noEnv, "{not json", testRow("1", "again"))
	_, err := importFile(t, h.a, file, "bad", false)
	var ire *InvalidRowsError
	if !errors.As(err, &ire) {
		t.Fatalf("import of a file with bad rows: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"line 2: field PASS_TO_PASS: must be a JSON array of strings",
		"line 4: field environment: is required",
		"line 5: not a JSON object",
		`line 6: field sample_id: "org__proj-1" is already the sample of line 1`,
		"nothing imported",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if v, _ := h.a.Events.Version(ctx, events.DatasetStream("bad")); v != 0 {
		t.Fatalf("a failed import appended %d events", v)
	}
	if _, err := projections.Get[projections.DatasetDoc](ctx, h.a.Docs, projections.DatasetsCollection, "bad"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a failed import created the dataset: %v", err)
	}
	res, err := importFile(t, h.a, file, "bad", true)
	if err != nil || res.New != 1 || len(res.Invalid) != 4 {
		t.Fatalf("import with skip-invalid: %+v %v", res, err)
	}
	if got := h.list("?dataset=bad"); sampleIDs(got) != "org__proj-1" {
		t.Fatalf("after skip-invalid: %s", sampleIDs(got))
	}
}

// TestImportArchiveEnvironment: an environment given as a tar.gz next to the JSONL is stored in
// the blob store by content; the same archive again is no new version, a different one is.
func TestImportArchiveEnvironment(t *testing.T) {
	t.Parallel()
	h := newCatalogHarness(t, nil)
	ctx, dir := context.Background(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "env.tar.gz"), []byte("pretend archive 1"), 0o644)
	row := testRow("1", "p")
	row["environment"] = map[string]any{"archive": "env.tar.gz", "work_dir": "repo", "verifier_command": "bash t.sh", "report_format": "junit", "report_paths": []string{"out/junit.xml"}}
	file := writeJSONL(t, dir, "a.jsonl", row)
	if _, err := importFile(t, h.a, file, "arch", false); err != nil {
		t.Fatal(err)
	}
	s, err := projections.Sample(ctx, h.a.Docs, "arch", "org__proj-1")
	if err != nil {
		t.Fatal(err)
	}
	ref := s.Environment.ArchiveRef
	if ref == nil || s.Environment.Archive != "" {
		t.Fatalf("environment: %+v", s.Environment)
	}
	got, err := blob.ReadAll(ctx, h.a.Blobs, blob.Ref{Digest: ref.Digest, Size: ref.Size})
	if err != nil || string(got) != "pretend archive 1" || s.EnvironmentDigest != "sha256-"+strings.TrimPrefix(ref.Digest, "sha256:") {
		t.Fatalf("archive %+v (%s): %q %v", ref, s.EnvironmentDigest, got, err)
	}
	if res, err := importFile(t, h.a, file, "arch", false); err != nil || res.Unchanged != 1 {
		t.Fatalf("the same archive again: %+v %v", res, err)
	}
	os.WriteFile(filepath.Join(dir, "env.tar.gz"), []byte("pretend archive 2"), 0o644)
	res, err := importFile(t, h.a, file, "arch", false)
	if err != nil || res.Versioned != 1 {
		t.Fatalf("changed archive: %+v %v", res, err)
	}
	if s2, _ := projections.Sample(ctx, h.a.Docs, "arch", "org__proj-1"); s2.Version != 2 || *s2.Environment.ArchiveRef == *ref || *s2.View().VersionDescription != "changed: environment, environment_digest" {
		t.Fatalf("after a changed archive: v%d %+v %q", s2.Version, s2.Environment.ArchiveRef, s2.VersionDescription)
	}
}
