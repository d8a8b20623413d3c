package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
)

// The agent-job tests: a served App whose runner is fakeAgentRunner, a repository under the
// local repositories directory, users credited on their account streams.

const agentJobCost = 100

// fakeAgentRunner records what it is asked to launch and, when told to, does what a real
// runner does in its own time: reports progress and completes through the API's endpoints.
type fakeAgentRunner struct {
	base string // where the test's App is served: the spec's URLs are rebased there

	mu       sync.Mutex
	launched []agentjob.Spec
	err      error                    // Launch's answer
	behave   func(spec agentjob.Spec) // run after Launch answers; nil: the job never reports
}

func (r *fakeAgentRunner) Launch(ctx context.Context, spec agentjob.Spec) error {
	r.mu.Lock()
	r.launched = append(r.launched, spec)
	err, behave := r.err, r.behave
	r.mu.Unlock()
	if err == nil && behave != nil {
		go behave(spec)
	}
	return err
}

// spec is what job id was launched with.
func (r *fakeAgentRunner) spec(t *testing.T, id string) agentjob.Spec {
	t.Helper()
	var found agentjob.Spec
	eventually(t, 20*time.Second, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for _, s := range r.launched {
			if s.JobID == id {
				found, n = s, n+1
			}
		}
		if n > 1 {
			t.Fatalf("job %s launched %d times", id, n)
		}
		return n == 1, fmt.Sprintf("job %s not launched (%d launches)", id, len(r.launched))
	})
	return found
}

// post sends body to u, one of a spec's URLs, on the test's server (a spec names the
// server's configured address), and decodes the answer into out.
func (r *fakeAgentRunner) post(t testing.TB, u string, body, out any) int {
	p, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(p.Path, app.Prefix+"/") {
		t.Errorf("runner URL %q: %v", u, err)
		return 0
	}
	return callJSON(t, r.base, "", http.MethodPost, strings.TrimPrefix(p.Path, app.Prefix), body, out)
}

// complete is the runner's completion of spec's job: the result stored first when ok.
func (r *fakeAgentRunner) complete(t testing.TB, spec agentjob.Spec, outcome, msg string, result *blob.Ref) (int, map[string]any) {
	var out map[string]any
	body := agentjob.CompletionRequest{Secret: spec.Secret, Outcome: outcome, ErrorMessage: msg, ResultRef: result}
	code := r.post(t, spec.CompletionURL, body, &out)
	return code, out
}

// storeResult stores a knowledge base for spec's job as a runner does locally.
func storeResult(t testing.TB, spec agentjob.Spec) blob.Ref {
	res := agentjob.Result{JobID: spec.JobID, Repo: spec.Repo, Ref: spec.Ref, Commit: "0123456789abcdef0123456789abcdef01234567", Files: []agentjob.File{
		{Path: "CLAUDE.md", AgentID: "claude_code", Content: "# widget\nBuild: make\n"},
		{Path: "AGENTS.md", AgentID: "codex", Content: "# widget\nTest: make test\n"},
		{Path: ".cursor/rules/widget.mdc", AgentID: "cursor", Content: "---\nalwaysApply: true\n---\n# widget\n"},
	}}
	raw, _ := json.Marshal(res)
	ref, err := blob.PutBytes(context.Background(), spec.Blobs, raw)
	if err != nil {
		t.Errorf("store the result: %v", err)
	}
	return ref
}

type agentJobHarness struct {
	t *testing.T
	*testApp
	runner *fakeAgentRunner
	repo   string // a git repository under the local repositories directory
}

func newAgentJobHarness(t *testing.T, backend string, clk clock.Clock, tune func(*config.Config)) *agentJobHarness {
	t.Helper()
	repos := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repos, "acme", "widget", ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	runner := &fakeAgentRunner{}
	ta := openApp(t, appSpec{Backend: backend, Serve: true, Run: runBus, Clock: clk, Tune: func(cfg *config.Config) {
		cfg.LocalReposDir, cfg.AgentJobCostCents = repos, agentJobCost
		cfg.Agents = `[{"id":"claude_code","name":"Claude Code","command":["claude","-p","study this repository"]}]`
		if tune != nil {
			tune(cfg)
		}
	}, Prepare: func(a *app.App) { a.AgentRunner = runner }})
	runner.base = ta.URL
	return &agentJobHarness{t: t, testApp: ta, runner: runner, repo: "acme/widget"}
}

func (h *agentJobHarness) grant(user string, cents int64) {
	h.t.Helper()
	if _, err := updateAccount(context.Background(), h.App, user, func(acct *events.Account) ([]events.Envelope, error) {
		return acct.GrantCredit(events.CreditGrantedData{CreditID: "grant-" + user, AmountCents: cents, Reason: "test"}, h.Clock.Now())
	}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *agentJobHarness) do(user, method, path string, body any, out any) int {
	h.t.Helper()
	return callJSON(h.t, h.URL, user, method, path, body, out)
}

func (h *agentJobHarness) create(user string, status int) agentJobView {
	h.t.Helper()
	var v agentJobView
	if code := h.do(user, http.MethodPost, "/agent-jobs", map[string]any{"repo": h.repo, "agent_id": "claude_code"}, &v); code != status {
		h.t.Fatalf("create: %d, want %d (%+v)", code, status, v)
	}
	return v
}

func (h *agentJobHarness) job(user, id string) agentJobView {
	h.t.Helper()
	var v agentJobView
	if code := h.do(user, http.MethodGet, "/agent-jobs/"+id, nil, &v); code != http.StatusOK {
		h.t.Fatalf("GET job %s: %d", id, code)
	}
	return v
}

func (h *agentJobHarness) waitStatus(user, id, status string) agentJobView {
	h.t.Helper()
	var v agentJobView
	eventually(h.t, 30*time.Second, func() (bool, string) {
		v = h.job(user, id)
		return v.Status == status, fmt.Sprintf("job %s is %s (%v), want %s", id, v.Status, v.ErrorMessage, status)
	})
	return v
}

func (h *agentJobHarness) balance(user string) int64 {
	h.t.Helper()
	b, err := projections.Get[projections.Balance](context.Background(), h.Docs, projections.BalanceCollection, user)
	if err != nil {
		h.t.Fatal(err)
	}
	return b.BalanceCents
}

// ledger counts user's usage entries of type typ for job id.
func (h *agentJobHarness) ledger(user, typ, id string) int {
	h.t.Helper()
	entries, err := projections.LedgerOf(context.Background(), h.Docs, user)
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Type == typ && e.JobID == id {
			n++
		}
	}
	return n
}

// reconciles checks that billing replay finds every balance as the read model holds it.
func (h *agentJobHarness) reconciles() {
	h.t.Helper()
	r := projections.NewReplay("")
	if err := r.Run(context.Background(), h.Events); err != nil {
		h.t.Fatal(err)
	}
	diffs, err := r.Reconcile(context.Background(), h.Docs)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.Equal() {
			h.t.Fatalf("billing replay differs: %+v", d)
		}
	}
}

func forBothBackends(t *testing.T, test func(t *testing.T, backend string)) {
	for _, backend := range []string{"embedded", "gcp"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			test(t, backend)
		})
	}
}

// TestAgentJobLifecycle: a job created, charged once, launched once with a secret and the
// repository's source, its progress and completion reported by the runner through the
// endpoints, its knowledge base read back whole and by agent; a repeated completion answers the
// job unchanged, a conflicting one is a 409; billing replay reconciles.
func TestAgentJobLifecycle(t *testing.T) {
	t.Parallel()
	forBothBackends(t, func(t *testing.T, backend string) {
		h := newAgentJobHarness(t, backend, nil, nil)
		h.runner.behave = func(spec agentjob.Spec) {
			var out map[string]any
			if code := h.runner.post(t, spec.ProgressURL,
				agentjob.ProgressRequest{Secret: spec.Secret, ProgressPct: 40, ProgressStage: "analysing"}, &out); code != http.StatusOK {
				t.Errorf("progress: %d %v", code, out)
			}
			ref := storeResult(t, spec)
			if code, out := h.runner.complete(t, spec, "completed", "", &ref); code != http.StatusOK {
				t.Errorf("completion: %d %v", code, out)
			}
		}
		h.grant("alice", 1000)
		created := h.create("alice", http.StatusAccepted)
		if created.Status != events.AgentJobStatusQueued || created.CostCents != agentJobCost || created.Repo != h.repo || created.AgentID != "claude_code" {
			t.Fatalf("created: %+v", created)
		}
		done := h.waitStatus("alice", created.JobID, events.AgentJobStatusCompleted)
		spec := h.runner.spec(t, created.JobID)
		if spec.Source.Dir != filepath.Join(h.Config.LocalReposDir, "acme", "widget") || spec.Agent.ID != "claude_code" || len(spec.Secret) != 64 ||
			!strings.HasSuffix(spec.CompletionURL, "/api/v1/agent-jobs/"+created.JobID+"/completion") {
			t.Fatalf("launched with %+v", spec)
		}
		if !done.ResultAvailable || done.Commit == nil || *done.Commit == "" || done.ProgressPct != 100 || done.CompletedAt == nil || done.StartedAt == nil {
			t.Fatalf("completed job: %+v", done)
		}
		// The secret is nowhere the user or the log's readers can see it.
		evs, err := h.Events.Load(context.Background(), events.AgentJobStream(created.JobID), 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if strings.Contains(string(e.Data), spec.Secret) {
				t.Fatalf("event %s holds the completion secret", e.Type)
			}
		}
		var all agentjob.Result
		if code := h.do("alice", http.MethodGet, "/agent-jobs/"+created.JobID+"/result", nil, &all); code != http.StatusOK || len(all.Files) != 3 || all.JobID != created.JobID {
			t.Fatalf("result: %d %+v", code, all)
		}
		var one agentjob.Result
		if code := h.do("alice", http.MethodGet, "/agent-jobs/"+created.JobID+"/result?agent_id=claude_code&agent_id=cursor", nil, &one); code != http.StatusOK ||
			len(one.Files) != 2 || one.Files[0].AgentID != "claude_code" || one.Files[1].AgentID != "cursor" {
			t.Fatalf("result for claude_code and cursor: %d %+v", code, one)
		}
		if code := h.do("alice", http.MethodGet, "/agent-jobs/"+created.JobID+"/result?agent_id=gemini_cli", nil, nil); code != http.StatusNotFound {
			t.Fatalf("result for an agent with no file: %d, want 404", code)
		}
		var list struct {
			Jobs       []agentJobView `json:"jobs"`
			NextCursor *string        `json:"next_cursor"`
		}
		if code := h.do("alice", http.MethodGet, "/agent-jobs", nil, &list); code != http.StatusOK || len(list.Jobs) != 1 || list.Jobs[0].JobID != created.JobID || list.NextCursor != nil {
			t.Fatalf("list: %d %+v", code, list)
		}
		if b := h.balance("alice"); b != 1000-agentJobCost || h.ledger("alice", projections.TxAgentJobUsage, created.JobID) != 1 {
			t.Fatalf("balance %d, charges %d", b, h.ledger("alice", projections.TxAgentJobUsage, created.JobID))
		}
		version := len(evs)
		if code, out := h.runner.complete(t, spec, "completed", "", nil); code != http.StatusOK || out["status"] != "completed" {
			t.Fatalf("identical repeat: %d %v", code, out)
		}
		if code, _ := h.runner.complete(t, spec, "error", "changed my mind", nil); code != http.StatusConflict {
			t.Fatalf("conflicting completion: %d, want 409", code)
		}
		if evs, _ := h.Events.Load(context.Background(), events.AgentJobStream(created.JobID), 1); len(evs) != version {
			t.Fatalf("the repeats appended %d events", len(evs)-version)
		}
		if h.ledger("alice", projections.TxAgentJobRefund, created.JobID) != 0 {
			t.Fatal("a completed job was refunded")
		}
		h.reconciles()
	})
}

// TestAgentJobListPages: newest first, an opaque cursor to the next page, null on the last; a
// cursor the listing did not hand out is a 422.
func TestAgentJobListPages(t *testing.T) {
	t.Parallel()
	h := newAgentJobHarness(t, "embedded", nil, nil)
	h.grant("alice", 1000)
	var ids []string
	for range 3 {
		ids = append(ids, h.create("alice", http.StatusAccepted).JobID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Jobs       []agentJobView `json:"jobs"`
			NextCursor *string        `json:"next_cursor"`
		}
		if code := h.do("alice", http.MethodGet, "/agent-jobs?limit=2&cursor="+url.QueryEscape(cursor), nil, &page); code != http.StatusOK || pages > 2 {
			t.Fatalf("page %d: %d", pages, code)
		}
		for _, j := range page.Jobs {
			got = append(got, j.JobID)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if want := []string{ids[2], ids[1], ids[0]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want newest first %v", got, want)
	}
	if code := h.do("alice", http.MethodGet, "/agent-jobs?cursor=forged", nil, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("forged cursor: %d", code)
	}
}

// TestAgentJobWrongSecret: an attacker who knows the job id tries many secrets, on the
// completion and the progress endpoints: 403 every time, and nothing is written.
func TestAgentJobWrongSecret(t *testing.T) {
	t.Parallel()
	h := newAgentJobHarness(t, "embedded", nil, nil)
	h.grant("alice", 1000)
	id := h.create("alice", http.StatusAccepted).JobID
	spec := h.runner.spec(t, id)
	h.waitStatus("alice", id, events.AgentJobStatusRunning)
	before, _ := h.Events.Load(context.Background(), events.AgentJobStream(id), 1)
	balance := h.balance("alice")
	for i, secret := range []string{"", "wrong", spec.Secret[:63], spec.Secret + "0", strings.ToUpper(spec.Secret), events.HashSecret(spec.Secret)} {
		for _, outcome := range []string{"error", "completed", "bogus"} {
			var out map[string]any
			if code := h.runner.post(t, spec.CompletionURL, map[string]any{"secret": secret, "outcome": outcome}, &out); code != http.StatusForbidden {
				t.Fatalf("try %d (%s): %d %v, want 403", i, outcome, code, out)
			}
		}
		if code := h.runner.post(t, spec.ProgressURL, map[string]any{"secret": secret, "progress_pct": 99}, nil); code != http.StatusForbidden {
			t.Fatalf("progress try %d: %d, want 403", i, code)
		}
	}
	if code := h.runner.post(t, spec.CompletionURL, map[string]any{"outcome": "error"}, nil); code != http.StatusForbidden {
		t.Fatalf("no secret: %d", code)
	}
	after, _ := h.Events.Load(context.Background(), events.AgentJobStream(id), 1)
	if len(after) != len(before) || h.balance("alice") != balance || h.job("alice", id).Status != events.AgentJobStatusRunning {
		t.Fatalf("wrong secrets changed the job: %d -> %d events, balance %d -> %d", len(before), len(after), balance, h.balance("alice"))
	}
	// With the secret, an outcome outside the enum is a 422 and still changes nothing.
	if code := h.runner.post(t, spec.CompletionURL, map[string]any{"secret": spec.Secret, "outcome": "bogus"}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("bogus outcome: %d", code)
	}
}

// TestAgentJobConcurrentErrorCompletions: 20 identical error completions at once all answer the
// failed job, and the charge is refunded once.
func TestAgentJobConcurrentErrorCompletions(t *testing.T) {
	t.Parallel()
	forBothBackends(t, func(t *testing.T, backend string) {
		n := 20
		if backend == "gcp" {
			n = 8 // the emulator handles contending transactions badly (DESIGN: bounded there)
		}
		h := newAgentJobHarness(t, backend, nil, nil)
		h.grant("alice", 1000)
		id := h.create("alice", http.StatusAccepted).JobID
		spec := h.runner.spec(t, id)
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() { codes[i], _ = h.runner.complete(t, spec, "error", "the agent crashed", nil) })
		}
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusOK {
				t.Fatalf("completion %d: %d", i, c)
			}
		}
		j := h.waitStatus("alice", id, events.AgentJobStatusError)
		if j.ErrorMessage == nil || *j.ErrorMessage != "the agent crashed" || j.RefundedCents != agentJobCost {
			t.Fatalf("failed job: %+v", j)
		}
		if got := h.ledger("alice", projections.TxAgentJobRefund, id); got != 1 {
			t.Fatalf("%d refunds, want 1", got)
		}
		if b := h.balance("alice"); b != 1000 {
			t.Fatalf("balance %d after the refund, want 1000", b)
		}
		acct, _ := h.Events.Load(context.Background(), events.AccountStream("alice"), 1)
		refunds := 0
		for _, e := range acct {
			if e.Type == events.AgentJobRefunded {
				refunds++
			}
		}
		if refunds != 1 {
			t.Fatalf("%d refund events on the account", refunds)
		}
		h.reconciles()
	})
}

// TestAgentJobCompletedWithoutResult: "completed" with nothing stored fails the job with
// RESULT_NOT_STORED and refunds it.
func TestAgentJobCompletedWithoutResult(t *testing.T) {
	t.Parallel()
	h := newAgentJobHarness(t, "embedded", nil, nil)
	h.grant("alice", 1000)
	id := h.create("alice", http.StatusAccepted).JobID
	spec := h.runner.spec(t, id)
	missing := blob.Ref{Digest: "sha256:" + strings.Repeat("ab", 32), Size: 10}
	if code, out := h.runner.complete(t, spec, "completed", "", &missing); code != http.StatusOK || out["status"] != "error" || out["error_code"] != events.CodeNoResult {
		t.Fatalf("completion without a result: %d %v", code, out)
	}
	if code := h.do("alice", http.MethodGet, "/agent-jobs/"+id+"/result", nil, nil); code != http.StatusNotFound {
		t.Fatalf("result of a failed job: %d", code)
	}
	if h.balance("alice") != 1000 || h.ledger("alice", projections.TxAgentJobRefund, id) != 1 {
		t.Fatalf("balance %d, refunds %d", h.balance("alice"), h.ledger("alice", projections.TxAgentJobRefund, id))
	}
}

// TestAgentJobOtherUser: another user's job id answers 404 on every operation that has a user,
// exactly like an id that names nothing, and the job is not in their listing.
func TestAgentJobOtherUser(t *testing.T) {
	t.Parallel()
	forBothBackends(t, func(t *testing.T, backend string) {
		h := newAgentJobHarness(t, backend, nil, nil)
		h.runner.behave = func(spec agentjob.Spec) {
			ref := storeResult(t, spec)
			h.runner.complete(t, spec, "completed", "", &ref)
		}
		h.grant("alice", 1000)
		id := h.create("alice", http.StatusAccepted).JobID
		h.waitStatus("alice", id, events.AgentJobStatusCompleted)
		for _, path := range []string{"/agent-jobs/" + id, "/agent-jobs/" + id + "/result", "/agent-jobs/" + id + "/result?agent_id=claude_code", "/agent-jobs/ajob_nothing", "/agent-jobs/ajob_nothing/result"} {
			var out map[string]any
			if code := h.do("mallory", http.MethodGet, path, nil, &out); code != http.StatusNotFound {
				t.Fatalf("mallory GET %s: %d %v", path, code, out)
			}
		}
		var list struct {
			Jobs []agentJobView `json:"jobs"`
		}
		if code := h.do("mallory", http.MethodGet, "/agent-jobs", nil, &list); code != http.StatusOK || len(list.Jobs) != 0 {
			t.Fatalf("mallory's list: %d %+v", code, list)
		}
		// The runner's endpoints have no user: a caller who is not the runner has no secret.
		if code := h.do("mallory", http.MethodPost, "/agent-jobs/"+id+"/completion", map[string]any{"secret": "x", "outcome": "error"}, nil); code != http.StatusForbidden {
			t.Fatalf("mallory's completion: %d", code)
		}
	})
}

// TestAgentJobTimeout: a job that never completes is failed with AGENT_JOB_TIMEOUT and refunded
// once by the reaper, however many passes overlap; one within its time is left alone; a
// completion arriving after is a 409.
func TestAgentJobTimeout(t *testing.T) {
	t.Parallel()
	forBothBackends(t, func(t *testing.T, backend string) {
		t0 := time.Now().UTC()
		fake := clock.NewFake(t0)
		h := newAgentJobHarness(t, backend, fake, nil)
		h.grant("alice", 1000)
		old := h.create("alice", http.StatusAccepted).JobID
		spec := h.runner.spec(t, old)
		fake.Advance(time.Hour)
		young := h.create("alice", http.StatusAccepted).JobID
		h.runner.spec(t, young)
		fake.Advance(time.Hour + time.Minute) // old: 2 h 1 min; young: 1 h 1 min
		var wg sync.WaitGroup
		settled := make([][]string, 3)
		for i := range settled {
			wg.Go(func() {
				s, _, err := ReapAgentJobs(context.Background(), h.App, passCap)
				if err != nil {
					t.Errorf("pass %d: %v", i, err)
				}
				settled[i] = s
			})
		}
		wg.Wait()
		if n := len(settled[0]) + len(settled[1]) + len(settled[2]); n != 1 {
			t.Fatalf("passes settled %v, want old once", settled)
		}
		j := h.waitStatus("alice", old, events.AgentJobStatusError)
		if j.ErrorCode == nil || *j.ErrorCode != events.CodeAgentJobTimeout || j.RefundedCents != agentJobCost {
			t.Fatalf("timed out job: %+v", j)
		}
		if st := h.job("alice", young).Status; st != events.AgentJobStatusRunning {
			t.Fatalf("the young job is %s", st)
		}
		if h.ledger("alice", projections.TxAgentJobRefund, old) != 1 || h.balance("alice") != 1000-agentJobCost {
			t.Fatalf("refunds %d, balance %d", h.ledger("alice", projections.TxAgentJobRefund, old), h.balance("alice"))
		}
		ref := storeResult(t, spec)
		if code, _ := h.runner.complete(t, spec, "completed", "", &ref); code != http.StatusConflict {
			t.Fatalf("completion after the timeout: %d, want 409", code)
		}
		h.reconciles()
	})
}

// TestAgentJobRequests: what POST /agent-jobs refuses (422 in the spec's shape, 402), and that
// concurrent creations never spend more than the balance.
func TestAgentJobRequests(t *testing.T) {
	t.Parallel()
	h := newAgentJobHarness(t, "embedded", nil, nil)
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"repo": "not a repo", "agent_id": "claude_code"}, "repo"},
		{map[string]any{"repo": "acme/..", "agent_id": "claude_code"}, "repo"},
		{map[string]any{"repo": "../etc", "agent_id": "claude_code"}, "repo"},
		{map[string]any{"repo": "acme/widget", "agent_id": "no-such-agent"}, "agent_id"},
		{map[string]any{"repo": "acme/widget"}, "agent_id"},
		{map[string]any{"agent_id": "demo"}, "repo"},
		{map[string]any{"repo": "acme/widget", "agent_id": "demo", "ref": "--upload-pack=evil"}, "ref"},
	} {
		var out struct {
			Detail []struct {
				Loc []any `json:"loc"`
			} `json:"detail"`
		}
		if code := h.do("alice", http.MethodPost, "/agent-jobs", tc.body, &out); code != http.StatusUnprocessableEntity || len(out.Detail) == 0 || fmt.Sprint(out.Detail[0].Loc) != "[body "+tc.field+"]" {
			t.Fatalf("%v: %d %+v", tc.body, code, out)
		}
	}
	if code := h.do("alice", http.MethodPost, "/agent-jobs", map[string]any{"repo": h.repo, "agent_id": "demo"}, nil); code != http.StatusPaymentRequired {
		t.Fatalf("no balance: %d, want 402", code)
	}
	var nf struct{ Detail, Code string }
	if code := h.do("alice", http.MethodPost, "/agent-jobs", map[string]any{"repo": "acme/nothing", "agent_id": "demo"}, &nf); code != http.StatusPaymentRequired {
		t.Fatalf("no balance, unknown repository: %d", code)
	}
	h.grant("bob", 250)
	if code := h.do("bob", http.MethodPost, "/agent-jobs", map[string]any{"repo": "acme/nothing", "agent_id": "demo"}, &nf); code != http.StatusNotFound || nf.Code != codeRepoNotFound {
		t.Fatalf("unknown repository without GitHub: %d %+v", code, nf)
	}
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Go(func() {
			codes[i] = h.do("bob", http.MethodPost, "/agent-jobs", map[string]any{"repo": h.repo, "agent_id": "demo"}, nil)
		})
	}
	wg.Wait()
	accepted := 0
	for _, c := range codes {
		switch c {
		case http.StatusAccepted:
			accepted++
		case http.StatusPaymentRequired:
		default:
			t.Fatalf("concurrent creation: %d", c)
		}
	}
	if accepted != 2 || h.balance("bob") != 50 {
		t.Fatalf("%d jobs accepted on 250 cents at %d each, balance %d", accepted, agentJobCost, h.balance("bob"))
	}
	var list struct {
		Jobs []agentJobView `json:"jobs"`
	}
	if h.do("bob", http.MethodGet, "/agent-jobs", nil, &list); len(list.Jobs) != 2 {
		t.Fatalf("bob lists %d jobs: the refused ones are nobody's", len(list.Jobs))
	}
	h.reconciles()
}

// TestAgentJobLaunchFailure: a runner that refuses the job, or a server without a runner,
// fails the job with LAUNCH_FAILED and refunds it.
func TestAgentJobLaunchFailure(t *testing.T) {
	t.Parallel()
	h := newAgentJobHarness(t, "embedded", nil, nil)
	h.grant("alice", 1000)
	h.runner.mu.Lock()
	h.runner.err = fmt.Errorf("no capacity")
	h.runner.mu.Unlock()
	id := h.create("alice", http.StatusAccepted).JobID
	j := h.waitStatus("alice", id, events.AgentJobStatusError)
	if j.ErrorCode == nil || *j.ErrorCode != events.CodeLaunchFailed || !strings.Contains(*j.ErrorMessage, "no capacity") {
		t.Fatalf("job: %+v", j)
	}
	h.AgentRunner = nil
	id2 := h.create("alice", http.StatusAccepted).JobID
	h.waitStatus("alice", id2, events.AgentJobStatusError)
	eventually(t, 10*time.Second, func() (bool, string) {
		b := h.balance("alice")
		return b == 1000, fmt.Sprintf("balance %d", b)
	})
}

// TestAgentJobAbandonedRequest: a request that died between recording its job and accepting
// it leaves the job requested; the reaper accepts it when the account holds its charge and
// rejects it otherwise.
func TestAgentJobAbandonedRequest(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Now())
	h := newAgentJobHarness(t, "embedded", fake, nil)
	h.grant("alice", 1000)
	ctx := context.Background()
	request := func(id string) {
		e, err := events.RequestAgentJob("req-"+id, events.AgentJobRequestedData{JobID: id, UserID: "alice", Repo: h.repo, AgentID: "claude_code",
			CostCents: agentJobCost, Source: events.AgentJobSource{Kind: events.SourceLocal}, TimeoutSeconds: 7200, CreatedAt: fake.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Create(ctx, h.App, events.AgentJobStream(id), []events.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
	request("ajob_charged")
	request("ajob_uncharged")
	if _, err := updateAccount(ctx, h.App, "alice", func(acct *events.Account) ([]events.Envelope, error) {
		return acct.ChargeAgentJob(events.AgentJobChargedData{JobID: "ajob_charged", AmountCents: agentJobCost}, fake.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if s, _, err := ReapAgentJobs(ctx, h.App, passCap); err != nil || len(s) != 0 {
		t.Fatalf("within the grace: %v %v", s, err)
	}
	fake.Advance(acceptGrace + time.Second)
	if s, _, err := ReapAgentJobs(ctx, h.App, passCap); err != nil || len(s) != 2 {
		t.Fatalf("after the grace: %v %v", s, err)
	}
	h.runner.spec(t, "ajob_charged")
	if code := h.do("alice", http.MethodGet, "/agent-jobs/ajob_uncharged", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the rejected job: %d", code)
	}
	if b := h.balance("alice"); b != 1000-agentJobCost {
		t.Fatalf("balance %d", b)
	}
	// The request that charged late finds its job rejected and gives the money back.
	if err := chargeAndAccept(ctx, h.App, "ajob_uncharged", "alice", agentJobCost); err == nil {
		t.Fatal("accepting a rejected job succeeded")
	}
	if b := h.balance("alice"); b != 1000-agentJobCost {
		t.Fatalf("balance %d after a late charge of a rejected job", b)
	}
}

// TestAgentJobRepositoryAccess: a GitHub user may have studied only what GitHub lets their token
// read: a repository GitHub hides is a 404 that says so (repository_not_found), one whose
// organisation has not approved the app a 404 with github_app_required; nothing is charged.
// A readable one is launched with a clone URL and the user's token.
func TestAgentJobRepositoryAccess(t *testing.T) {
	t.Parallel()
	runner := &fakeAgentRunner{}
	e := newIDEnv(t, func(cfg *config.Config) { cfg.AgentJobCostCents = agentJobCost })
	e.a.AgentRunner = runner
	e.gh.addAccount(42, fakeAcc{Login: "alice", Repos: 3})
	alice := e.login(42)
	eventually(t, 10*time.Second, func() (bool, string) {
		b, _ := projections.Get[projections.Balance](context.Background(), e.a.Docs, projections.BalanceCollection, alice.UserID)
		return b.BalanceCents == 500, fmt.Sprintf("sign-up credit: balance %d", b.BalanceCents)
	})
	for _, tc := range []struct{ repo, code string }{
		{"someone/private-thing", codeRepoNotFound},
		{"alice/repo-007", codeRepoNotFound}, // alice has three: repo-000 to repo-002
		{lockedOrg + "/internal", codeGitHubAppMissing},
	} {
		var out struct{ Detail, Code string }
		resp := e.call(http.MethodPost, "/agent-jobs", alice.AccessToken, map[string]any{"repo": tc.repo, "agent_id": "demo"}, nil)
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusNotFound || out.Code != tc.code || !strings.Contains(out.Detail, tc.repo) {
			t.Fatalf("%s: %d %+v, want 404 %s", tc.repo, resp.StatusCode, out, tc.code)
		}
	}
	var job agentJobView
	e.want(e.call(http.MethodPost, "/agent-jobs", alice.AccessToken, map[string]any{"repo": "alice/repo-001", "agent_id": "demo", "ref": "main"}, &job), http.StatusAccepted)
	if b, _ := projections.Get[projections.Balance](context.Background(), e.a.Docs, projections.BalanceCollection, alice.UserID); b.BalanceCents != 500-agentJobCost {
		t.Fatalf("balance %d: the refused requests were charged", b.BalanceCents)
	}
	// No bus runs here: launch as the bus would.
	evs, err := e.a.Events.Load(context.Background(), events.AgentJobStream(job.JobID), 1)
	if err != nil || len(evs) != 2 {
		t.Fatalf("job events: %d %v", len(evs), err)
	}
	if err := launchAgentJob(context.Background(), e.a, evs[1]); err != nil {
		t.Fatal(err)
	}
	spec := runner.spec(t, job.JobID)
	if spec.Source.GitURL != e.gh.URL+"/alice/repo-001.git" || !strings.HasPrefix(spec.Source.Token, "gho_fake42") || spec.Ref != "main" {
		t.Fatalf("launched with source %+v ref %q", spec.Source, spec.Ref)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data), spec.Source.Token) {
			t.Fatalf("event %s holds the GitHub token", e.Type)
		}
	}
}
