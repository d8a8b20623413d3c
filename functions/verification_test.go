package functions

// End-to-end tests of verification: the real App (SQLite, the in-process bus and its consumers),
// the real local sandbox runtime running `codeset sandboxd`, the demo dataset imported through
// the catalog, and every call over HTTP as a user makes it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/demo"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/dataset"
	"github.com/codeset/codeset/shared/grading"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

type verifyEnv struct {
	t       testing.TB
	a       *app.App
	url     string // where it is served
	samples map[string]dataset.Row
	dataset map[string]string // sample id -> its dataset, when not the demo's
	rt      *countingRuntime
}

// countingRuntime is a real runtime (the local one, unless a test says), counting the verifier
// runs it is asked for.
type countingRuntime struct {
	sandbox.Runtime
	mu       sync.Mutex
	verifies int
	refused  int // stops refused to "another instance"
	flaky    int // AwaitVerify calls still to fail as if the oracle were out of reach
}

// AwaitVerify fails while r is flaky, as an oracle out of reach for a moment, then waits.
func (r *countingRuntime) AwaitVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string, wait time.Duration) (sandbox.VerifyResult, bool, error) {
	r.mu.Lock()
	flaky := r.flaky > 0
	if flaky {
		r.flaky--
	}
	r.mu.Unlock()
	if flaky {
		return sandbox.VerifyResult{}, false, fmt.Errorf("%w: connection refused (the test's)", sandbox.ErrUnreachable)
	}
	return r.Runtime.AwaitVerify(ctx, info, spec, id, wait)
}

// List and Reclaim are the wrapped runtime's (sandbox.Inventory), for the leaked-sandbox sweep.
func (r *countingRuntime) List(ctx context.Context) ([]sandbox.Listed, error) {
	return r.Runtime.(sandbox.Inventory).List(ctx)
}

func (r *countingRuntime) Reclaim(ctx context.Context, s sandbox.Listed) error {
	return r.Runtime.(sandbox.Inventory).Reclaim(ctx, s)
}

// StopVerify stops the oracle, unless the call comes from "another instance" (otherInstance),
// which cannot reach this runtime's processes.
func (r *countingRuntime) StopVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string) error {
	if ctx.Value(otherInstance{}) != nil {
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		return nil
	}
	return r.Runtime.StopVerify(ctx, info, spec, id)
}

func (r *countingRuntime) refusedStops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

func (r *countingRuntime) StartVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, req sandbox.VerifyRequest, id string) error {
	r.mu.Lock()
	r.verifies++
	r.mu.Unlock()
	return r.Runtime.StartVerify(ctx, info, spec, req, id)
}

func (r *countingRuntime) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verifies
}

// newVerifyEnv starts an App on the embedded default as `codeset serve` would, with the local
// runtime and the demo dataset.
func newVerifyEnv(t testing.TB, tune func(*config.Config)) *verifyEnv {
	t.Helper()
	return newVerifyEnvOn(t, "embedded", tune)
}

// newVerifyEnvOn starts the App on backend: "embedded" (SQLite and the in-process bus), or "gcp"
// (Firestore and Pub/Sub on their emulators, pushing to the App's own server).
func newVerifyEnvOn(t testing.TB, backend string, tune func(*config.Config)) *verifyEnv {
	t.Helper()
	return newVerifyEnvWith(t, backend, tune, nil, nil)
}

// newVerifyEnvWith is newVerifyEnvOn with the runtime rt (nil: the local one) and prepare, when
// set, run on the App before anything else.
func newVerifyEnvWith(t testing.TB, backend string, tune func(*config.Config), rt sandbox.Runtime, prepare func(*app.App)) *verifyEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end verification runs real sandboxes; skipped with -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := sandboxtest.Binary(root)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	if rt == nil {
		if rt, err = local.New(local.Options{DataDir: dataDir, Binary: bin, Ephemeral: true}); err != nil {
			t.Fatal(err)
		}
	}
	counting := &countingRuntime{Runtime: rt}
	// The bus is the one background task verification needs; the other startup tasks (the
	// bootstrap user, recoveries) belong to other capabilities.
	ta := openApp(t, appSpec{Backend: backend, DataDir: dataDir, Tune: tune, Sandboxes: counting, Run: runBus, Serve: true, Prepare: prepare})
	a := ta.App
	ctx := context.Background()
	rows, err := demo.Rows()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ImportDataset(ctx, a, rows, nil, ImportOptions{Dataset: demo.Name, Description: demo.Description}); err != nil {
		t.Fatal(err)
	}
	env := &verifyEnv{t: t, a: a, url: ta.URL, samples: map[string]dataset.Row{}, dataset: map[string]string{}, rt: counting}
	for _, r := range rows {
		env.samples[r.Content.SampleID] = r
	}
	t.Cleanup(func() {
		// Sessions the test left open are ended, so that no sandbox outlives it.
		sessions, _ := os.ReadDir(filepath.Join(dataDir, "sandboxes"))
		for _, s := range sessions {
			endSession(context.Background(), a, s.Name(), events.EndClosed, time.Now())
		}
	})
	return env
}

// call sends a request as user and returns the status and the raw answer.
func (e *verifyEnv) call(user, method, path string, body any) (int, []byte) {
	e.t.Helper()
	resp, raw := callAPI(e.t, e.url, user, method, path, body)
	return resp.StatusCode, raw
}

func (e *verifyEnv) expect(status int, user, method, path string, body, out any) {
	e.t.Helper()
	got, raw := e.call(user, method, path, body)
	if got != status {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, got, raw, status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// credit grants user credit through the account stream, as `codeset credits grant` does.
func (e *verifyEnv) credit(user string) {
	e.t.Helper()
	ev, err := events.New(ids.New(), user, events.CreditGranted, time.Now(), events.CreditGrantedData{CreditID: ids.New(), AmountCents: 100000, Reason: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := record(context.Background(), e.a, events.AccountStream(user), events.Any, ev); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 10*time.Second, func() (bool, string) {
		return RequirePositiveBalance(context.Background(), e.a, user) == nil, "the credit never reached the balance"
	})
}

// openSession opens a session on a demo sample and waits until it is ready.
func (e *verifyEnv) openSession(user, sampleID string) string {
	e.t.Helper()
	var created struct {
		SessionID string `json:"session_id"`
	}
	ds := demo.Name
	if d, ok := e.dataset[sampleID]; ok {
		ds = d
	}
	e.expect(http.StatusCreated, user, "POST", "/sessions", map[string]any{"dataset": ds, "sample_id": sampleID, "ttl_minutes": 30}, &created)
	eventually(e.t, 60*time.Second, func() (bool, string) {
		var s struct {
			Status string            `json:"status"`
			Error  *events.ErrorInfo `json:"error"`
		}
		e.expect(http.StatusOK, user, "GET", "/sessions/"+created.SessionID, nil, &s)
		if s.Status != events.StatusReady && s.Status != events.StatusCreating {
			e.t.Fatalf("session %s became %s: %+v", created.SessionID, s.Status, s.Error)
		}
		return s.Status == events.StatusReady, "session " + created.SessionID + " is still creating"
	})
	return created.SessionID
}

// importRows imports JSONL rows (their paths relative to files) into the dataset name, as
// `codeset dataset import` does.
func (e *verifyEnv) importRows(t testing.TB, name, jsonl string, files fs.FS) {
	t.Helper()
	rows, bad, err := dataset.Parse(strings.NewReader(jsonl), files)
	if err != nil || len(bad) > 0 {
		t.Fatalf("rows: %v %v", err, bad)
	}
	e.importRowsAs(t, name, rows...)
}

// importRowsAs imports parsed rows into the dataset name (a demo row with its sample id and
// environment changed is a variant of a demo sample).
func (e *verifyEnv) importRowsAs(t testing.TB, name string, rows ...dataset.Row) {
	t.Helper()
	if _, err := ImportDataset(context.Background(), e.a, rows, nil, ImportOptions{Dataset: name}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		e.samples[r.Content.SampleID] = r
		e.dataset[r.Content.SampleID] = name
	}
}

// ciRun reports whether the tests run under CI, where what they need must be there.
func ciRun() bool { return os.Getenv("CI") == "true" }

// exec runs a command in the session and waits for its result.
func (e *verifyEnv) exec(user, sid, command string) (exitCode int, stdout, stderr string) {
	e.t.Helper()
	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	e.expect(http.StatusAccepted, user, "POST", "/sessions/"+sid+"/exec", map[string]any{"command": command, "command_timeout": 120}, &started)
	var it struct {
		ExitCode *int   `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
	}
	eventually(e.t, 3*time.Minute, func() (bool, string) { // each GET waits up to 30 s itself
		e.expect(http.StatusOK, user, "GET", fmt.Sprintf("/sessions/%s/interactions/%s?wait=30", sid, started.InteractionID), nil, &it)
		return it.ExitCode != nil, fmt.Sprintf("command %q never completed", command)
	})
	return *it.ExitCode, it.Stdout, it.Stderr
}

// applyGold uploads the sample's gold patch and applies it in the session, as an agent would.
func (e *verifyEnv) applyGold(user, sid, sampleID string) {
	e.t.Helper()
	patch := e.samples[sampleID].Content.Patch
	e.expect(http.StatusOK, user, "POST", "/sessions/"+sid+"/upload", map[string]any{
		"file_path": "/tmp/gold.diff", "content_base64": base64.StdEncoding.EncodeToString([]byte(patch)),
	}, nil)
	if code, out, errOut := e.exec(user, sid, "git apply /tmp/gold.diff"); code != 0 {
		e.t.Fatalf("gold patch does not apply: %d %s %s", code, out, errOut)
	}
}

// passesWithGold applies the gold patch in the session, as an agent would, and checks that the
// oracle passes it.
func (e *verifyEnv) passesWithGold(user, sid, sampleID string) jobView {
	e.t.Helper()
	e.applyGold(user, sid, sampleID)
	j := e.verify(user, sid)
	if j.Status != events.JobCompleted || !j.Result.IsSuccess || j.Result.Resolution != string(grading.ResolvedFull) {
		e.t.Fatalf("the gold patch: %s", j.raw)
	}
	return j
}

// jobView is the spec's VerificationJob as a client reads it.
type jobView struct {
	JobID         string                     `json:"job_id"`
	SampleID      string                     `json:"sample_id"`
	SessionID     string                     `json:"session_id"`
	Status        string                     `json:"status"`
	CreatedAt     time.Time                  `json:"created_at"`
	StartedAt     *time.Time                 `json:"started_at"`
	CompletedAt   *time.Time                 `json:"completed_at"`
	Result        *events.VerificationResult `json:"result"`
	Error         *events.ErrorInfo          `json:"error"`
	ContainerInfo map[string]any             `json:"container_info"`
	raw           []byte
}

// startVerify asks for a verification and checks the 202 answer.
func (e *verifyEnv) startVerify(user, sid string) string {
	e.t.Helper()
	var started struct {
		JobID     string    `json:"job_id"`
		Status    string    `json:"status"`
		StartedAt time.Time `json:"started_at"`
	}
	e.expect(http.StatusAccepted, user, "POST", "/sessions/"+sid+"/verify", nil, &started)
	if started.JobID == "" || started.Status != events.JobPending || started.StartedAt.IsZero() {
		e.t.Fatalf("VerifyStartResponse %+v", started)
	}
	return started.JobID
}

// waitJob polls a job until it ends and returns it; seen collects every status it went through.
func (e *verifyEnv) waitJob(user, sid, job string, seen map[string]bool) jobView {
	e.t.Helper()
	var j jobView
	eventually(e.t, 5*time.Minute, func() (bool, string) {
		j = jobView{}
		status, raw := e.call(user, "GET", "/sessions/"+sid+"/verify/"+job, nil)
		if status != http.StatusOK {
			e.t.Fatalf("GET job: %d %s", status, raw)
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			e.t.Fatal(err)
		}
		j.raw = raw
		if seen != nil {
			seen[j.Status] = true
		}
		return j.Status == events.JobCompleted || j.Status == events.JobError || j.Status == events.JobCancelled,
			fmt.Sprintf("job %s still %s", job, j.Status)
	})
	return j
}

func (e *verifyEnv) verify(user, sid string) jobView {
	e.t.Helper()
	return e.waitJob(user, sid, e.startVerify(user, sid), nil)
}

func detailNames(ds []events.TestDetail) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Name)
	}
	sort.Strings(out)
	return out
}

func sortedUnion(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	sort.Strings(out)
	return out
}

// checkJobSchema checks a job's JSON against the spec's VerificationJob and TestSuiteResult:
// required fields present, result only when completed, error only when it did not complete.
func checkJobSchema(t *testing.T, j jobView) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(j.raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"job_id", "sample_id", "session_id", "status", "created_at"} {
		if _, ok := doc[f]; !ok {
			t.Errorf("VerificationJob lacks %s: %s", f, j.raw)
		}
	}
	switch j.Status {
	case events.JobCompleted:
		res, ok := doc["result"].(map[string]any)
		if !ok || j.Error != nil {
			t.Fatalf("a completed job without result or with an error: %s", j.raw)
		}
		for _, f := range []string{"is_success", "execution_duration_seconds", "total", "passed", "failed", "skipped"} {
			if _, ok := res[f]; !ok {
				t.Errorf("TestSuiteResult lacks %s", f)
			}
		}
		if res["tool"] != "test_suite" {
			t.Errorf("result tool %v", res["tool"])
		}
		if j.StartedAt == nil || j.CompletedAt == nil || j.CompletedAt.Before(*j.StartedAt) || j.StartedAt.Before(j.CreatedAt) {
			t.Errorf("timestamps: created %v started %v completed %v", j.CreatedAt, j.StartedAt, j.CompletedAt)
		}
	default:
		if doc["result"] != nil || j.Error == nil || j.Error.Code == "" || j.Error.Message == "" {
			t.Fatalf("a %s job needs an error and no result: %s", j.Status, j.raw)
		}
	}
}

// TestVerifyDemoSamples validates every demo sample through the whole system, as a dataset author
// would: an untouched session is not successful, its failed tests are exactly FAIL_TO_PASS plus
// FAIL_TO_FAIL and its passed ones exactly PASS_TO_PASS; after the gold patch, it is successful.
func TestVerifyDemoSamples(t *testing.T) {
	checkDemoSamples(t, newVerifyEnv(t, nil))
}

// TestVerifyDemoSamplesOnGCPBackend: the same on Firestore and Pub/Sub (their emulators).
func TestVerifyDemoSamplesOnGCPBackend(t *testing.T) {
	checkDemoSamples(t, newVerifyEnvOn(t, "gcp", nil))
}

func checkDemoSamples(t *testing.T, env *verifyEnv) {
	env.credit("alice")
	sampleIDs := make([]string, 0, len(env.samples))
	for id := range env.samples {
		sampleIDs = append(sampleIDs, id)
	}
	sort.Strings(sampleIDs)
	if len(sampleIDs) < 6 {
		t.Fatalf("%d demo samples", len(sampleIDs))
	}
	for _, id := range sampleIDs {
		t.Run(id, func(t *testing.T) {
			e := *env
			e.t = t
			c := env.samples[id].Content
			sid := e.openSession("alice", id)
			defer e.call("alice", "DELETE", "/sessions/"+sid, nil)

			seen := map[string]bool{}
			j := e.waitJob("alice", sid, e.startVerify("alice", sid), seen)
			checkJobSchema(t, j)
			if j.Status != events.JobCompleted {
				t.Fatalf("untouched: %s %+v", j.Status, j.Error)
			}
			r := j.Result
			if r.IsSuccess || r.Resolution != string(grading.ResolvedNo) || j.SampleID != id || j.SessionID != sid {
				t.Fatalf("untouched: is_success %v resolution %s", r.IsSuccess, r.Resolution)
			}
			failed := detailNames(r.Failures)
			for _, f := range c.FailToPass {
				if !slices.Contains(failed, f) {
					t.Errorf("untouched: FAIL_TO_PASS %s not among the failures %v", f, failed)
				}
			}
			if want := sortedUnion(c.FailToPass, c.FailToFail); !slices.Equal(failed, want) {
				t.Errorf("untouched: failed %v, want FAIL_TO_PASS + FAIL_TO_FAIL %v", failed, want)
			}
			if want := sortedUnion(c.PassToPass); !slices.Equal(detailNames(r.Passes), want) {
				t.Errorf("untouched: passed %v, want PASS_TO_PASS %v", detailNames(r.Passes), want)
			}
			if !slices.Equal(sortedUnion(r.FailToPassFailed), sortedUnion(c.FailToPass)) || len(r.PassToPassFailed) != 0 {
				t.Errorf("untouched: fail_to_pass_failed %v pass_to_pass_failed %v", r.FailToPassFailed, r.PassToPassFailed)
			}
			if r.Stdout == "" && c.Environment.ReportFormat == grading.FormatGoTestJSON {
				t.Error("untouched: no verifier stdout")
			}

			e.applyGold("alice", sid, id)
			j = e.verify("alice", sid)
			checkJobSchema(t, j)
			if j.Status != events.JobCompleted || !j.Result.IsSuccess || j.Result.Resolution != string(grading.ResolvedFull) {
				t.Fatalf("gold: %s %+v %s", j.Status, j.Error, j.raw)
			}
			if want := sortedUnion(c.FailToPass, c.PassToPass); !slices.Equal(detailNames(j.Result.Passes), want) {
				t.Errorf("gold: passed %v, want %v", detailNames(j.Result.Passes), want)
			}
			if want := sortedUnion(c.FailToFail); !slices.Equal(detailNames(j.Result.Failures), want) {
				t.Errorf("gold: failed %v, want FAIL_TO_FAIL %v", detailNames(j.Result.Failures), want)
			}
			// Verifying left the agent's work in place: the gold patch is still applied.
			if code, _, _ := e.exec("alice", sid, "git apply --check -R /tmp/gold.diff"); code != 0 {
				t.Error("after verifying, the gold patch is no longer in the work tree")
			}
		})
	}
	if runs := env.rt.count(); runs != 2*len(sampleIDs) {
		t.Errorf("%d verifier runs for %d verifications", runs, 2*len(sampleIDs))
	}
}

// TestVerifyAccess: a session or job of another user, a job under another session, an unknown
// one: 404, never a 403; a session that has ended takes no verification (409).
func TestVerifyAccess(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	env.credit("bob")
	sid := env.openSession("alice", "sh-semver-1")
	other := env.openSession("alice", "go-roman-1")
	job := env.startVerify("alice", sid)
	j := env.waitJob("alice", sid, job, nil)
	if j.Status != events.JobCompleted || j.ContainerInfo == nil {
		t.Fatalf("job %s: %s", j.Status, j.raw)
	}
	for _, c := range []struct {
		user, method, path string
		status             int
	}{
		{"bob", "POST", "/sessions/" + sid + "/verify", http.StatusNotFound},
		{"bob", "GET", "/sessions/" + sid + "/verify/" + job, http.StatusNotFound},
		{"alice", "GET", "/sessions/" + other + "/verify/" + job, http.StatusNotFound},
		{"alice", "GET", "/sessions/" + sid + "/verify/ver_unknown", http.StatusNotFound},
		{"alice", "POST", "/sessions/ses_unknown/verify", http.StatusNotFound},
		{"", "POST", "/sessions/" + sid + "/verify", http.StatusUnauthorized},
		{"alice", "GET", "/sessions/" + sid + "/verify/" + job, http.StatusOK},
	} {
		if got, raw := env.call(c.user, c.method, c.path, nil); got != c.status || (got != http.StatusOK && !bytes.Contains(raw, []byte(`"detail"`))) {
			t.Errorf("%s %s as %q: %d %s, want %d", c.method, c.path, c.user, got, raw, c.status)
		}
	}
	env.expect(http.StatusOK, "alice", "DELETE", "/sessions/"+sid, nil, nil)
	if got, raw := env.call("alice", "POST", "/sessions/"+sid+"/verify", nil); got != http.StatusConflict {
		t.Errorf("verify a closed session: %d %s", got, raw)
	}
	env.expect(http.StatusOK, "alice", "GET", "/sessions/"+sid+"/verify/"+job, nil, nil)
	env.call("alice", "DELETE", "/sessions/"+other, nil)
}

// variant imports a copy of a demo sample under another id whose verifier command is command,
// into the dataset "variants": a sample whose own verifier misbehaves (an agent cannot make it
// misbehave: the verifier's files are protected).
func (e *verifyEnv) variant(t testing.TB, base, id, command string) {
	t.Helper()
	row := e.samples[base]
	row.Content.SampleID = id
	row.Content.Environment.VerifierCommand = command
	e.importRowsAs(t, "variants-"+strings.ToLower(strings.NewReplacer("_", "-", " ", "-").Replace(id)), row)
}

// TestVerifyErrors: what keeps the oracle from grading is a job in error with a clear code,
// never a pass.
func TestVerifyErrors(t *testing.T) {
	env := newVerifyEnv(t, func(c *config.Config) { c.VerifyTimeout = 4 * time.Second })
	env.credit("alice")
	cases := []struct {
		name, sample, command, code string
	}{
		{"a test that never ends", "go-roman-1", "sleep 3600", events.CodeVerifierTimeout},
		{"the report is never written", "py-duration-1", "python3 -c 'import sys; sys.exit(3)'", grading.CodeReportMissing},
		{"the report is not JUnit", "sh-semver-1", `mkdir -p reports; echo "<html>not a report</html>" > reports/junit.xml`, grading.CodeReportMalformed},
		{"the report lists no test", "sh-semver-1", `mkdir -p reports; echo "<testsuites></testsuites>" > reports/junit.xml`, grading.CodeReportEmpty},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *env
			e.t = t
			id := fmt.Sprintf("%s-broken-%d", c.sample, i)
			e.variant(t, c.sample, id, c.command)
			sid := e.openSession("alice", id)
			defer e.call("alice", "DELETE", "/sessions/"+sid, nil)
			started := time.Now()
			j := e.verify("alice", sid)
			checkJobSchema(t, j)
			if j.Status != events.JobError || j.Error.Code != c.code {
				t.Fatalf("%s: %s", j.Status, j.raw)
			}
			t.Logf("%s: %s", j.Error.Code, j.Error.Message)
			if c.code == events.CodeVerifierTimeout && time.Since(started) > 60*time.Second {
				t.Fatalf("the timeout of 4s took %s", time.Since(started))
			}
		})
	}
}

// TestVerifyTestPatchThatDoesNotApply: a sample whose test patch does not apply to its base is a
// job in error with TEST_PATCH_FAILED (told by the oracle's typed refusal), never a result.
func TestVerifyTestPatchThatDoesNotApply(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	row := env.samples["sh-semver-1"]
	row.Content.SampleID = "sh-semver-bad-patch"
	// The first context line of the patch says what the file does not hold.
	lines := strings.Split(row.Content.TestPatch, "\n")
	for i, hunk := 0, false; i < len(lines); i++ {
		hunk = hunk || strings.HasPrefix(lines[i], "@@")
		if hunk && strings.HasPrefix(lines[i], " ") {
			lines[i] = " this line is not in the file"
			break
		}
	}
	row.Content.TestPatch = strings.Join(lines, "\n")
	env.importRowsAs(t, "variants-bad-patch", row)
	sid := env.openSession("alice", "sh-semver-bad-patch")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	j := env.verify("alice", sid)
	checkJobSchema(t, j)
	if j.Status != events.JobError || j.Error.Code != events.CodeTestPatchFailed || !strings.Contains(j.Error.Message, "test patch") {
		t.Fatalf("%s", j.raw)
	}
}

// TestVerifyCancelledWhenSessionEnds: closing the session while the verifier runs cancels the job
// at once, and the verifier stops with the sandbox.
func TestVerifyCancelledWhenSessionEnds(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	env.variant(t, "go-roman-1", "go-roman-hangs", "sleep 3600")
	sid := env.openSession("alice", "go-roman-hangs")
	job := env.startVerify("alice", sid)
	eventually(t, 60*time.Second, func() (bool, string) {
		var j jobView
		env.expect(http.StatusOK, "alice", "GET", "/sessions/"+sid+"/verify/"+job, nil, &j)
		if j.Status != events.JobRunning && j.Status != events.JobPending && j.Status != events.JobStarting {
			t.Fatalf("job %s never ran", j.Status)
		}
		return j.Status == events.JobRunning, "job " + j.Status + ", not running"
	})
	// The verifier is under way in the sandbox: the runtime was asked to run it.
	eventually(t, 10*time.Second, func() (bool, string) { return env.rt.count() > 0, "no verifier run asked of the runtime" })
	closed := time.Now()
	env.expect(http.StatusOK, "alice", "DELETE", "/sessions/"+sid, nil, nil)
	j := env.waitJob("alice", sid, job, nil)
	checkJobSchema(t, j)
	if j.Status != events.JobCancelled || j.Error.Code != events.CodeCancelled {
		t.Fatalf("%s", j.raw)
	}
	if took := time.Since(closed); took > 15*time.Second {
		t.Fatalf("cancelled %s after the session closed", took)
	}
	if got, raw := env.call("alice", "POST", "/sessions/"+sid+"/verify", nil); got != http.StatusConflict {
		t.Fatalf("verify after close: %d %s", got, raw)
	}
}

// TestVerifierRunsAJobOnce: the verifier's deliveries of one request, however many and however
// concurrent, run the oracle once and record one result.
func TestVerifierRunsAJobOnce(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	sid := env.openSession("alice", "sh-semver-1")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	before := env.rt.count()
	job := env.startVerify("alice", sid)
	evs, err := env.a.Events.Load(context.Background(), events.VerificationStream(job), 1)
	if err != nil || len(evs) == 0 {
		t.Fatal(err)
	}
	var c app.Consumer // the App's own verifier, with its in-flight state
	for _, k := range env.a.Wiring.Consumers {
		if k.Name == "Verifier" {
			c = k
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Handle(context.Background(), env.a, evs[0]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	j := env.waitJob("alice", sid, job, nil)
	if j.Status != events.JobCompleted {
		t.Fatalf("%s", j.raw)
	}
	if err := c.Handle(context.Background(), env.a, evs[0]); err != nil {
		t.Fatal(err)
	}
	all, _ := env.a.Events.Load(context.Background(), events.VerificationStream(job), 1)
	types := make([]string, 0, len(all))
	for _, e := range all {
		types = append(types, e.Type)
	}
	want := []string{events.VerificationRequested, events.VerificationStarted, events.VerificationRunning, events.VerificationCompleted}
	if !slices.Equal(types, want) {
		t.Fatalf("stream %v, want %v", types, want)
	}
	if runs := env.rt.count() - before; runs != 1 {
		t.Fatalf("the oracle ran %d times", runs)
	}
}

// TestVerificationRecovery: a job the stopped server left starting or running ends in error at
// the next start (nothing else would end it); pending and finished jobs are left alone.
func TestVerificationRecovery(t *testing.T) {
	a := openApp(t, appSpec{}).App
	ctx := context.Background()
	at := time.Now()
	record := func(job string, steps ...func(v events.Verification) ([]events.Envelope, error)) {
		t.Helper()
		req, err := events.RequestVerification(ids.New(), events.VerificationRequestedData{JobID: job, SessionID: "s", UserID: "u", CreatedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := record(ctx, a, events.VerificationStream(job), 0, req); err != nil {
			t.Fatal(err)
		}
		for _, step := range steps {
			if _, _, err := updateVerification(ctx, a, job, nil, step); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := func(v events.Verification) ([]events.Envelope, error) { return v.Start(ids.New(), at) }
	run := func(v events.Verification) ([]events.Envelope, error) { return v.Run(ids.New(), at) }
	done := func(v events.Verification) ([]events.Envelope, error) {
		return v.Complete(ids.New(), at, events.VerificationResult{Tool: grading.ToolTestSuite})
	}
	record("pending")
	record("starting", start)
	record("running", start, run)
	record("completed", start, run, done)
	if err := recoverVerifications(ctx, a); err != nil {
		t.Fatal(err)
	}
	for job, want := range map[string]string{"pending": events.JobPending, "starting": events.JobError, "running": events.JobError, "completed": events.JobCompleted} {
		v, _, err := loadVerification(ctx, a, job)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != want || (want == events.JobError && v.Error.Code != events.CodeVerifierInterrupted) {
			t.Errorf("%s: %s %+v, want %s", job, v.Status, v.Error, want)
		}
	}
}

// TestVerifyOnGCPBackend runs a sample's verification on the GCP backend (Firestore, and Pub/Sub
// pushing every event to the consumers), with the same local sandbox: untouched it fails with its
// TestVerifyConcurrentJobs: jobs asked for at once in one session each run and grade the same
// work tree alike (each in an oracle sandbox of its own, one after the other).
func TestVerifyConcurrentJobs(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	const id = "sh-semver-1"
	c := env.samples[id].Content
	sid := env.openSession("alice", id)
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	jobs := make([]string, 3)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, raw := env.call("alice", "POST", "/sessions/"+sid+"/verify", nil)
			var r struct {
				JobID string `json:"job_id"`
			}
			if status != http.StatusAccepted || json.Unmarshal(raw, &r) != nil {
				t.Errorf("verify: %d %s", status, raw)
			}
			jobs[i] = r.JobID
		}()
	}
	wg.Wait()
	for _, job := range jobs {
		j := env.waitJob("alice", sid, job, nil)
		if j.Status != events.JobCompleted || j.Result.IsSuccess || !slices.Equal(detailNames(j.Result.Failures), sortedUnion(c.FailToPass, c.FailToFail)) {
			t.Fatalf("job %s: %s", job, j.raw)
		}
	}
}

// TestVerificationHandsItsWaitOver: an oracle that outlasts one delivery's wait runs on; the
// deliveries hand the wait over through still-running events, however many of them arrive, and
// the job completes once.
func TestVerificationHandsItsWaitOver(t *testing.T) {
	env := newVerifyEnv(t, func(c *config.Config) { c.DeliveryWait = 300 * time.Millisecond })
	env.credit("alice")
	base := env.samples["sh-semver-1"].Content.Environment.VerifierCommand
	env.variant(t, "sh-semver-1", "sh-semver-slow", "sleep 2; "+base)
	sid := env.openSession("alice", "sh-semver-slow")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	job := env.startVerify("alice", sid)
	stream := events.VerificationStream(job)
	ctx := context.Background()
	handover := firstEvent(t, env.a, stream, events.VerificationStillRunning)
	var wg sync.WaitGroup
	for range 3 { // other instances get the same hand-over
		wg.Go(func() {
			if err := handleVerifier(ctx, env.a, handover); err != nil {
				t.Error(err)
			}
		})
	}
	j := env.waitJob("alice", sid, job, nil)
	wg.Wait()
	if j.Status != events.JobCompleted {
		t.Fatalf("%s", j.raw)
	}
	evs, _ := env.a.Events.Load(ctx, stream, 1)
	count := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count[events.VerificationCompleted] != 1 || count[events.VerificationStarted] != 1 || count[events.VerificationStillRunning] < 2 {
		t.Fatalf("events %v: want one claim, one result and hand-overs between", count)
	}
	for _, e := range evs { // late deliveries append nothing
		if err := handleVerifier(ctx, env.a, e); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := env.a.Events.Load(ctx, stream, 1); len(again) != len(evs) {
		t.Fatalf("late deliveries appended %d events", len(again)-len(evs))
	}
	if env.rt.count() != 1 {
		t.Fatalf("the oracle was started %d times", env.rt.count())
	}
}

// TestVerificationCancelledByAnotherInstance: the session's end reaches a verifier that is not
// the one waiting for the oracle (another instance, whose runtime cannot reach this oracle's
// processes): it cancels the job, and the waiting side sees it in the job's stream and stops
// the oracle.
func TestVerificationCancelledByAnotherInstance(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	env.variant(t, "go-roman-1", "go-roman-sleeps", "sleep 3600")
	sid := env.openSession("alice", "go-roman-sleeps")
	job := env.startVerify("alice", sid)
	firstEvent(t, env.a, events.VerificationStream(job), events.VerificationRunning)
	// The other instance's runtime cannot reach this oracle: its stop is refused.
	elsewhere := context.WithValue(context.Background(), otherInstance{}, true)
	ended := events.Envelope{Stream: events.SessionStream(sid), Type: events.SessionEnded}
	if err := handleVerifier(elsewhere, env.a, ended); err != nil {
		t.Fatal(err)
	}
	j := env.waitJob("alice", sid, job, nil)
	if j.Status != events.JobCancelled {
		t.Fatalf("%s", j.raw)
	}
	if env.rt.refusedStops() == 0 {
		t.Fatal("the other instance stopped the oracle itself; the test proves nothing")
	}
	s, _, err := loadSession(context.Background(), env.a, sid)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		_, _, err := env.rt.AwaitVerify(context.Background(), env.a.SandboxInfo(sid, s.Sandbox), sandboxSpec(env.a, s, s.Env), job, 0)
		return errors.Is(err, sandbox.ErrNoSuchRun), fmt.Sprintf("the oracle still runs (%v)", err)
	})
}

// otherInstance marks the context of a call made as another instance of the backend would.
type otherInstance struct{}

// TestVerificationOutlivesAnUnreachableOracle: an oracle out of reach for a moment is waited for
// again by the next delivery, not taken as failed.
func TestVerificationOutlivesAnUnreachableOracle(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	sid := env.openSession("alice", "sh-semver-1")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	env.rt.mu.Lock()
	env.rt.flaky = 2
	env.rt.mu.Unlock()
	j := env.verify("alice", sid)
	if j.Status != events.JobCompleted {
		t.Fatalf("%s", j.raw)
	}
	evs, _ := env.a.Events.Load(context.Background(), events.VerificationStream(j.JobID), 1)
	handovers := 0
	for _, e := range evs {
		if e.Type == events.VerificationStillRunning {
			handovers++
		}
	}
	if handovers == 0 {
		t.Fatal("the unreachable oracle was not waited for again")
	}
}
