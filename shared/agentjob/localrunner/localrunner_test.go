package localrunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/localrunner"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

var binary string

func TestMain(m *testing.M) {
	root, _ := filepath.Abs("../../..")
	bin, err := sandboxtest.Binary(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	os.RemoveAll(filepath.Dir(bin))
	os.Exit(code)
}

// report records what the runner reports, as the core's completion would receive it.
type report struct {
	jobID, secret, outcome, message string
	result                          *blob.Ref
}

type reports struct {
	mu   sync.Mutex
	list []report
	fail int // the first fail calls answer an error, as a store that does not answer yet
}

func (r *reports) Report(ctx context.Context, jobID, secret, outcome, msg string, result *blob.Ref) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("store unavailable")
	}
	r.list = append(r.list, report{jobID, secret, outcome, msg, result})
	return nil
}

func (r *reports) all() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]report(nil), r.list...)
}

func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "owner", "name")
	os.MkdirAll(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "pyproject.toml"), []byte("[project]\nname = \"calc\"\n[project.scripts]\ncalc = \"calc:main\"\n[tool.pytest.ini_options]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "calc.py"), []byte("def main():\n    return 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tests", "test_calc.py"), []byte("def test_main():\n    pass\n"), 0o644)
	var head string
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base"}, {"rev-parse", "HEAD"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		head = strings.TrimSpace(string(out))
	}
	return dir, head
}

type harness struct {
	t       *testing.T
	data    string
	blobs   *fsblob.Store
	reports *reports
}

func newHarness(t *testing.T) *harness {
	data := t.TempDir()
	blobs, err := fsblob.New(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, data: data, blobs: blobs, reports: &reports{}}
}

func (h *harness) runner(opts localrunner.Options) *localrunner.Runner {
	h.t.Helper()
	opts.DataDir, opts.Binary, opts.Report = h.data, binary, h.reports.Report
	r, err := localrunner.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Log(r.Describe())
	return r
}

func (h *harness) result(ref *blob.Ref) agentjob.Result {
	h.t.Helper()
	if ref == nil {
		h.t.Fatal("no result reported")
	}
	b, err := blob.ReadAll(context.Background(), h.blobs, *ref)
	if err != nil {
		h.t.Fatal(err)
	}
	var res agentjob.Result
	if err := json.Unmarshal(b, &res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) spec(id string, src agentjob.Source, agent agentjob.Agent) agentjob.Spec {
	return agentjob.Spec{JobID: id, Repo: "owner/name", Agent: agent, Source: src, Secret: "secret-" + id, Blobs: h.blobs}
}

var demoAgent = agentjob.Agent{ID: "demo", Name: "Demo"}

// The demo agent from a local repository to a stored knowledge base, launched many times at
// once and again by a second runner on the same data dir: it runs once.
func TestDemoOnce(t *testing.T) {
	h := newHarness(t)
	dir, head := gitRepo(t)
	r := h.runner(localrunner.Options{})
	spec := h.spec("job-demo", agentjob.Source{Dir: dir}, demoAgent)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Launch(context.Background(), spec); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r.Wait()
	again := h.runner(localrunner.Options{})
	if err := again.Launch(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	again.Wait()
	got := h.reports.all()
	if len(got) != 1 {
		t.Fatalf("%d reports for one job: %+v", len(got), got)
	}
	rep := got[0]
	if rep.jobID != "job-demo" || rep.secret != "secret-job-demo" || rep.outcome != "completed" {
		t.Fatalf("report %+v", rep)
	}
	res := h.result(rep.result)
	if res.Commit != head || res.JobID != "job-demo" || len(res.Files) != 5 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Files[0].Content, "console script `calc`: `calc:main`") {
		t.Errorf("knowledge base:\n%s", res.Files[0].Content)
	}
	// The work tree is gone; the claim stays.
	if _, err := os.Stat(filepath.Join(h.data, "agentjobs", "job-demo", "repo")); !os.IsNotExist(err) {
		t.Errorf("the work tree is still there: %v", err)
	}
}

// The demo dataset's way: the repository as an environment archive in the blob store.
func TestArchiveSource(t *testing.T) {
	h := newHarness(t)
	dir, head := gitRepo(t)
	tgz := filepath.Join(t.TempDir(), "env.tar.gz")
	if out, err := exec.Command("tar", "-C", dir, "-czf", tgz, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	f, _ := os.Open(tgz)
	ref, err := h.blobs.Put(context.Background(), f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := h.runner(localrunner.Options{})
	r.Launch(context.Background(), h.spec("job-archive", agentjob.Source{Archive: &ref}, demoAgent))
	r.Wait()
	got := h.reports.all()
	if len(got) != 1 || got[0].outcome != "completed" {
		t.Fatalf("reports %+v", got)
	}
	if res := h.result(got[0].result); res.Commit != head {
		t.Fatalf("commit %q, want %q", res.Commit, head)
	}
}

// A fake agent command writes an instruction file; what it sees of the host is checked from its
// side: none of the server's settings, and, with namespaces, no network and no host process.
func TestAgentCommand(t *testing.T) {
	t.Setenv("CODESET_JWT_KEYS", "server-signing-key")
	t.Setenv("ANTHROPIC_API_KEY", "passed-on-purpose")
	h := newHarness(t)
	dir, _ := gitRepo(t)
	r := h.runner(localrunner.Options{PassEnv: []string{"ANTHROPIC_API_KEY"}})
	script := `{ echo "# notes"; env | sort; echo "--net"; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; echo "--procs"; ls /proc | grep -c '^[0-9]'; } > CLAUDE.md`
	agent := agentjob.Agent{ID: "claude_code", Name: "Claude Code", Command: []string{"sh", "-c", script}}
	r.Launch(context.Background(), h.spec("job-cmd", agentjob.Source{Dir: dir}, agent))
	r.Wait()
	got := h.reports.all()
	if len(got) != 1 || got[0].outcome != "completed" {
		t.Fatalf("reports %+v", got)
	}
	res := h.result(got[0].result)
	if len(res.Files) != 1 || res.Files[0].Path != "CLAUDE.md" || res.Files[0].AgentID != "claude_code" {
		t.Fatalf("files %+v", res.Files)
	}
	seen := res.Files[0].Content
	for _, leak := range []string{"server-signing-key", "secret-job-cmd", "CODESET_AGENT_JOB_SECRET"} {
		if strings.Contains(seen, leak) {
			t.Errorf("the agent saw %q:\n%s", leak, seen)
		}
	}
	if !strings.Contains(seen, "ANTHROPIC_API_KEY=passed-on-purpose") {
		t.Errorf("the passed variable is missing:\n%s", seen)
	}
	if strings.Contains(r.Describe(), "own pid and network namespaces") {
		net, procs, _ := strings.Cut(seen[strings.Index(seen, "--net\n")+6:], "--procs\n")
		if strings.TrimSpace(net) != "lo" {
			t.Errorf("the agent sees network interfaces %q", net)
		}
		if n := strings.TrimSpace(procs); n != "3" && n != "4" && n != "5" {
			t.Errorf("the agent sees %s processes", n)
		}
	}
}

// A failing agent, a missing ref and a report that fails at first: each ends in one report.
func TestErrors(t *testing.T) {
	h := newHarness(t)
	dir, _ := gitRepo(t)
	h.reports.fail = 2
	r := h.runner(localrunner.Options{})
	failing := agentjob.Agent{ID: "codex", Command: []string{"sh", "-c", "echo quota exceeded >&2; exit 1"}}
	r.Launch(context.Background(), h.spec("job-fail", agentjob.Source{Dir: dir}, failing))
	r.Wait()
	spec := h.spec("job-ref", agentjob.Source{Dir: dir}, demoAgent)
	spec.Ref = "no-such-branch"
	r.Launch(context.Background(), spec)
	r.Wait()
	got := h.reports.all()
	if len(got) != 2 {
		t.Fatalf("reports %+v", got)
	}
	for i, want := range []string{"quota exceeded", `ref "no-such-branch" is not in`} {
		if got[i].outcome != "error" || !strings.Contains(got[i].message, want) || got[i].result != nil {
			t.Errorf("report %+v, want an error with %q", got[i], want)
		}
	}
	if err := r.Launch(context.Background(), h.spec("../escape", agentjob.Source{Dir: dir}, demoAgent)); err == nil {
		t.Error("a job id that leaves the data dir was launched")
	}
}
