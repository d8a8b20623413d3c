package functions

// The harness of the session tests: an App on a fresh SQLite file served over HTTP, a caller per
// bearer token, a sample in the catalog, credit, and the non-inline consumers driven by the bus.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

type sessionHarness struct {
	t    *testing.T
	a    *app.App
	url  string // where it is served
	cfg  config.Config
	stop func() // stops serving and running, and closes the App (also at the end of the test)
}

const (
	testDataset = "testset"
	testSample  = "sample-1"
)

// newSessionHarness opens an App in dataDir (a fresh temp dir when empty), starts it as
// `codeset serve` does (start-up tasks, then the bus, the reaper and the other loops) and serves
// it. rt is its sandbox runtime; nil means the real local runtime running the codeset binary
// built from this tree.
func newSessionHarness(t *testing.T, dataDir string, rt sandbox.Runtime, tune func(*config.Config)) *sessionHarness {
	t.Helper()
	return newSessionHarnessWith(t, dataDir, rt, nil, tune, nil)
}

// newSessionHarnessAt is newSessionHarness on the clock clk, set before anything starts.
func newSessionHarnessAt(t *testing.T, dataDir string, rt sandbox.Runtime, clk clock.Clock, tune func(*config.Config)) *sessionHarness {
	t.Helper()
	return newSessionHarnessWith(t, dataDir, rt, clk, tune, nil)
}

// newSessionHarnessWith is newSessionHarnessAt whose prepare (when not nil) may still replace
// parts of the App before anything starts.
func newSessionHarnessWith(t *testing.T, dataDir string, rt sandbox.Runtime, clk clock.Clock, tune func(*config.Config), prepare func(*app.App)) *sessionHarness {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	if rt == nil {
		rt = localRuntime(t, dataDir)
	}
	ta := openApp(t, appSpec{DataDir: dataDir, Sandboxes: rt, Clock: clk, Run: runServe, Serve: true, Prepare: prepare,
		Tune: func(c *config.Config) {
			c.CostPerMinuteCents = max(c.CostPerMinuteCents, 1)
			if tune != nil {
				tune(c)
			}
		}})
	return &sessionHarness{t: t, a: ta.App, url: ta.URL, cfg: ta.Config, stop: ta.stop}
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// localRuntime is the embedded default's sandbox runtime, running `codeset sandboxd` from a
// binary built from this tree (the test binary has no sandboxd).
func localRuntime(t *testing.T, dataDir string) sandbox.Runtime {
	t.Helper()
	rt, err := local.New(local.Options{DataDir: dataDir, Binary: sandboxBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	return stopAtEnd(t, rt)
}

// sandboxBinary is the codeset binary built from this tree, once.
func sandboxBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		root, _ := filepath.Abs("..")
		binaryPath, binaryErr = sandboxtest.Binary(root)
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// stopAtEnd stops every sandbox rt starts when the test ends. Sandboxes outlive the server on
// purpose (restarts reattach them), so nothing else stops the ones a test leaves open, and every
// `make test` would leak some.
func stopAtEnd(t *testing.T, rt sandbox.Runtime) sandbox.Runtime {
	tr := &trackingRuntime{Runtime: rt}
	t.Cleanup(func() {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, info := range tr.started {
			rt.Stop(context.Background(), info)
		}
	})
	return tr
}

// trackingRuntime remembers every sandbox it started.
type trackingRuntime struct {
	sandbox.Runtime
	mu      sync.Mutex
	started []sandbox.Info
}

func (r *trackingRuntime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	info, err := r.Runtime.Start(ctx, spec)
	r.mu.Lock()
	r.started = append(r.started, sandbox.Info{Name: spec.SessionID})
	if err == nil {
		r.started[len(r.started)-1] = info
	}
	r.mu.Unlock()
	return info, err
}

// addSample puts a dataset and one sample running in env into the catalog read model.
func (h *sessionHarness) addSample(env events.Environment) {
	h.t.Helper()
	ctx := context.Background()
	if err := projections.Put(ctx, h.a.Docs, projections.DatasetsCollection, testDataset, projections.DatasetDoc{Name: testDataset, SampleCount: 1, CreatedAt: time.Now()}); err != nil {
		h.t.Fatal(err)
	}
	doc := projections.SampleDoc{Dataset: testDataset, Version: 1, Latest: true, CreatedAt: time.Now(),
		SampleContent: events.SampleContent{SampleID: testSample, InstanceID: testSample, Environment: env}}
	if err := projections.Put(ctx, h.a.Docs, projections.SamplesCollection, projections.SampleDocID(testDataset, testSample, 1), doc); err != nil {
		h.t.Fatal(err)
	}
}

// credit grants user cents, as an operator would: the balance projector folds it.
func (h *sessionHarness) credit(user string, cents int64) {
	h.t.Helper()
	ctx := context.Background()
	e, err := events.New(ids.New(), user, events.CreditGranted, time.Now(), events.CreditGrantedData{CreditID: ids.New(), AmountCents: cents, Reason: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := record(ctx, h.a, events.AccountStream(user), events.Any, e); err != nil {
		h.t.Fatal(err)
	}
	if err := RequirePositiveBalance(ctx, h.a, user); err != nil {
		h.t.Fatalf("after a credit of %d: %v", cents, err)
	}
}

// do sends a request as user and decodes the JSON answer into out (when not nil).
func (h *sessionHarness) do(user, method, path string, body any, out any) int {
	h.t.Helper()
	return callJSON(h.t, h.url, user, method, path, body, out)
}

// expect sends a request and fails unless it answers status.
func (h *sessionHarness) expect(status int, user, method, path string, body any, out any) {
	h.t.Helper()
	var raw json.RawMessage
	got := h.do(user, method, path, body, &raw)
	if got != status {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, got, redact(string(raw)), status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatal(err)
		}
	}
}

// openSession creates a session for user and waits until it is ready.
func (h *sessionHarness) openSession(user string) string {
	h.t.Helper()
	var created struct {
		SessionID string `json:"session_id"`
		Status    string `json:"status"`
	}
	h.expect(http.StatusCreated, user, "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample, "ttl_minutes": 10}, &created)
	if created.Status != "creating" {
		h.t.Fatalf("created as %q", created.Status)
	}
	h.waitStatus(user, created.SessionID, "ready")
	return created.SessionID
}

// waitStatus polls a session until it has status.
func (h *sessionHarness) waitStatus(user, id, status string) sessionView {
	h.t.Helper()
	var s sessionView
	eventually(h.t, 30*time.Second, func() (bool, string) {
		s = sessionView{}
		h.expect(http.StatusOK, user, "GET", "/sessions/"+id, nil, &s)
		return s.Status == status, fmt.Sprintf("session %s is %s (%+v), want %s", id, s.Status, s.Error, status)
	})
	return s
}

type interactionView struct {
	InteractionID        string   `json:"interaction_id"`
	SessionID            string   `json:"session_id"`
	InteractionType      string   `json:"interaction_type"`
	Status               string   `json:"status"`
	ExitCode             *int     `json:"exit_code"`
	Stdout               *string  `json:"stdout"`
	Stderr               *string  `json:"stderr"`
	ExecutionTimeSeconds *float64 `json:"execution_time_seconds"`
	Success              *bool    `json:"success"`
	Message              *string  `json:"message"`
	Command              string   `json:"command"`
	CommandTimeout       int      `json:"command_timeout"`
	FilePath             string   `json:"file_path"`
	SizeBytes            *int64   `json:"size_bytes"`

	Usage *events.Usage `json:"usage"` // an extension of the spec
}

// run executes command in the session and waits for its result with ?wait.
func (h *sessionHarness) run(user, sid, command string, timeout int) interactionView {
	h.t.Helper()
	var started struct {
		InteractionID string `json:"interaction_id"`
		Status        string `json:"status"`
	}
	h.expect(http.StatusAccepted, user, "POST", "/sessions/"+sid+"/exec", map[string]any{"command": command, "command_timeout": timeout}, &started)
	if started.Status != "pending" {
		h.t.Fatalf("exec answered status %q", started.Status)
	}
	return h.await(user, sid, started.InteractionID)
}

func (h *sessionHarness) await(user, sid, iid string) interactionView {
	h.t.Helper()
	var it interactionView
	eventually(h.t, 90*time.Second, func() (bool, string) { // each GET waits up to 30 s itself
		it = interactionView{}
		h.expect(http.StatusOK, user, "GET", fmt.Sprintf("/sessions/%s/interactions/%s?wait=30", sid, iid), nil, &it)
		return it.ExitCode != nil, "interaction " + iid + " never completed"
	})
	return it
}

// sampleArchive packs a small git repository at its base commit, as the catalog stores a
// sample's environment, and returns its path.
func sampleArchive(t *testing.T) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(filepath.Join(repo, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "README"), []byte("hello from "+testSample+"\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "pkg", "calc.py"), []byte("def add(a, b):\n    return a - b\n"), 0o644)
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "env.tar.gz")
	if b, err := exec.Command("tar", "-C", repo, "-czf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	return out
}

// expectStopped fails unless the session's sandbox is gone: its agent and every process that
// ran in its directory.
func (h *sessionHarness) expectStopped(sid string) {
	h.t.Helper()
	s, _, err := loadSession(context.Background(), h.a, sid)
	if err != nil {
		h.t.Fatal(err)
	}
	if s.Sandbox.PID > 0 && !sandboxtest.WaitGone(s.Sandbox.PID, 10*time.Second) {
		h.t.Fatalf("agent %d of %s still runs", s.Sandbox.PID, sid)
	}
	if left := sandboxtest.ProcessesIn(filepath.Join(h.cfg.DataDir, "sandboxes", sid)); len(left) > 0 {
		h.t.Fatalf("processes of %s left: %v", sid, left)
	}
	if rt, ok := h.a.Sandboxes.(*agentRuntime); ok && rt.running() != 0 {
		h.t.Fatalf("%d in-process sandboxes still run", rt.running())
	}
}
