package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/worker"
)

// gitRepo makes a small repository with two commits and a branch, returning its directory and
// the first commit.
func gitRepo(t *testing.T) (dir, first string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(dir, "cmd", "tool"), 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/tool\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "cmd", "tool", "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "one")
	first = run("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("test:\n\tgo test ./...\n"), 0o644)
	run("add", ".")
	run("commit", "-q", "-m", "two")
	return dir, first
}

// endpoint is the API's side of the in-image path: the signed result URL and the completion.
type endpoint struct {
	*httptest.Server
	mu          sync.Mutex
	result      []byte
	contentType string
	completions []agentjob.CompletionRequest
	progress    []agentjob.ProgressRequest
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/upload/result.json":
			if r.URL.Query().Get("sig") != "s3cr3t-signature" {
				http.Error(w, "bad signature", http.StatusForbidden)
				return
			}
			e.result, e.contentType = b, r.Header.Get("Content-Type")
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/agent-jobs/job1/completion":
			var c agentjob.CompletionRequest
			json.Unmarshal(b, &c)
			e.completions = append(e.completions, c)
			w.Write([]byte(`{"job_id":"job1"}`))
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/agent-jobs/job1/progress":
			var p agentjob.ProgressRequest
			json.Unmarshal(b, &p)
			e.progress = append(e.progress, p)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) job(env map[string]string) map[string]string {
	base := map[string]string{
		worker.EnvJobID: "job1", worker.EnvRepo: "acme/tool", worker.EnvAgent: "demo",
		worker.EnvCompletionURL: e.URL + "/api/v1/agent-jobs/job1/completion",
		worker.EnvProgressURL:   e.URL + "/api/v1/agent-jobs/job1/progress",
		worker.EnvSecret:        "the-completion-secret",
		worker.EnvResultURL:     e.URL + "/upload/result.json?sig=s3cr3t-signature",
	}
	for k, v := range env {
		base[k] = v
	}
	return base
}

func runEnv(t *testing.T, env map[string]string) error {
	t.Helper()
	j, err := worker.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return worker.Run(context.Background(), j, nil, nil)
}

// The runner image's path: clone at a ref, the demo, the result PUT to the signed URL, then the
// completion with the secret and the result's digest.
func TestInImageDemo(t *testing.T) {
	src, first := gitRepo(t)
	e := newEndpoint(t)
	env := e.job(map[string]string{worker.EnvGitURL: "file://" + src, worker.EnvRef: first,
		worker.EnvWorkDir: filepath.Join(t.TempDir(), "work", "repo")})
	if err := runEnv(t, env); err != nil {
		t.Fatal(err)
	}
	if len(e.completions) != 1 {
		t.Fatalf("%d completions", len(e.completions))
	}
	c := e.completions[0]
	if c.Secret != "the-completion-secret" || c.Outcome != "completed" || c.ResultRef == nil || c.ResultRef.Size != int64(len(e.result)) {
		t.Fatalf("completion %+v (result %d bytes)", c, len(e.result))
	}
	if e.contentType != "application/json" {
		t.Errorf("result PUT as %q", e.contentType)
	}
	var res agentjob.Result
	if err := json.Unmarshal(e.result, &res); err != nil {
		t.Fatal(err)
	}
	if res.JobID != "job1" || res.Repo != "acme/tool" || res.Ref != first || res.Commit != first || len(res.Files) != 5 {
		t.Fatalf("result %+v", res)
	}
	// The ref's tree, not the branch's head: the Makefile came with the second commit.
	if strings.Contains(res.Files[0].Content, "make test") || !strings.Contains(res.Files[0].Content, "`./cmd/tool`") {
		t.Errorf("knowledge base of the wrong tree:\n%s", res.Files[0].Content)
	}
	if len(e.progress) == 0 || e.progress[0].Secret != "the-completion-secret" {
		t.Errorf("progress %+v", e.progress)
	}
}

// A repository that cannot be had is an error outcome, reported, with nothing PUT.
func TestInImageError(t *testing.T) {
	e := newEndpoint(t)
	env := e.job(map[string]string{worker.EnvGitURL: "file://" + filepath.Join(t.TempDir(), "nothing"), worker.EnvRef: "main"})
	if err := runEnv(t, env); err != nil {
		t.Fatal(err)
	}
	if len(e.completions) != 1 || e.completions[0].Outcome != "error" || e.completions[0].ErrorMessage == "" || e.completions[0].ResultRef != nil {
		t.Fatalf("completions %+v", e.completions)
	}
	if e.result != nil {
		t.Error("a result was PUT for a failed job")
	}
}

// A result the signed URL refuses is never reported "completed".
func TestInImageResultRefused(t *testing.T) {
	src, _ := gitRepo(t)
	e := newEndpoint(t)
	env := e.job(map[string]string{worker.EnvGitURL: "file://" + src, worker.EnvResultURL: e.URL + "/upload/result.json?sig=expired"})
	if err := runEnv(t, env); err != nil {
		t.Fatal(err)
	}
	c := e.completions[0]
	if c.Outcome != "error" || !strings.HasPrefix(c.ErrorMessage, "RESULT_NOT_STORED") || strings.Contains(c.ErrorMessage, "sig=expired") {
		t.Fatalf("completion %+v", c)
	}
}

// The token reaches the git server as a header, and neither the command line of any process nor
// the error message holds it.
func TestGitTokenNeverShown(t *testing.T) {
	const token = "ghs_supersecrettoken123"
	var mu sync.Mutex
	var auth []string
	git := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "repository not found", http.StatusNotFound)
	}))
	defer git.Close()
	e := newEndpoint(t)
	env := e.job(map[string]string{worker.EnvGitURL: git.URL + "/acme/tool.git", worker.EnvGitToken: token})
	if err := runEnv(t, env); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 || auth[0] != "Basic eC1hY2Nlc3MtdG9rZW46Z2hzX3N1cGVyc2VjcmV0dG9rZW4xMjM=" {
		t.Fatalf("the git server saw Authorization %q", auth)
	}
	c := e.completions[0]
	if c.Outcome != "error" || strings.Contains(c.ErrorMessage, token) || strings.Contains(c.ErrorMessage, "eC1hY2Nlc3M") {
		t.Fatalf("completion %+v", c)
	}
}

// An agent command: what it writes in the instruction files is the knowledge base; the secrets
// are not in its environment.
func TestAgentCommand(t *testing.T) {
	src, _ := gitRepo(t)
	e := newEndpoint(t)
	script := `mkdir -p .cursor/rules && printf 'seen: %s\n' "${CODESET_AGENT_JOB_SECRET:-none}" > CLAUDE.md && printf -- '---\nalwaysApply: true\n---\nrule\n' > .cursor/rules/kb.mdc && ln -s /etc/passwd GEMINI.md`
	cmd, _ := json.Marshal([]string{"sh", "-c", script})
	env := e.job(map[string]string{worker.EnvGitURL: "file://" + src, worker.EnvAgent: "claude_code", worker.EnvCommand: string(cmd)})
	if err := runEnv(t, env); err != nil {
		t.Fatal(err)
	}
	if c := e.completions[0]; c.Outcome != "completed" {
		t.Fatalf("completion %+v", c)
	}
	var res agentjob.Result
	json.Unmarshal(e.result, &res)
	got := map[string]string{}
	for _, f := range res.Files {
		got[f.Path] = f.AgentID + ": " + f.Content
	}
	want := map[string]string{"CLAUDE.md": "claude_code: seen: none\n", ".cursor/rules/kb.mdc": "cursor: ---\nalwaysApply: true\n---\nrule\n"}
	if len(got) != len(want) || got["CLAUDE.md"] != want["CLAUDE.md"] || got[".cursor/rules/kb.mdc"] != want[".cursor/rules/kb.mdc"] {
		t.Fatalf("files %q, want %q (the symlink left out)", got, want)
	}
}

// A failing command, or one that writes nothing, is an error outcome with its output.
func TestAgentCommandFails(t *testing.T) {
	src, _ := gitRepo(t)
	for _, c := range []struct{ script, want string }{
		{"echo the model is down >&2; exit 3", "the model is down"},
		{"true", "wrote no instruction file"},
	} {
		e := newEndpoint(t)
		cmd, _ := json.Marshal([]string{"sh", "-c", c.script})
		env := e.job(map[string]string{worker.EnvGitURL: "file://" + src, worker.EnvCommand: string(cmd)})
		if err := runEnv(t, env); err != nil {
			t.Fatal(err)
		}
		if got := e.completions[0]; got.Outcome != "error" || !strings.Contains(got.ErrorMessage, c.want) {
			t.Errorf("%q: completion %+v", c.script, got)
		}
	}
}

func TestFromEnvRefusesIncomplete(t *testing.T) {
	_, err := worker.FromEnv(func(k string) string { return map[string]string{worker.EnvJobID: "j"}[k] })
	if err == nil || !strings.Contains(err.Error(), worker.EnvAgent) || !strings.Contains(err.Error(), "nowhere to deliver") {
		t.Fatalf("err = %v", err)
	}
	// Env and FromEnv agree.
	j := worker.Job{JobID: "j", AgentID: "demo", GitURL: "https://example.com/r.git", Output: "/tmp/o", Command: []string{"a", "b c"}}
	env := map[string]string{}
	for _, kv := range j.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	back, err := worker.FromEnv(func(k string) string { return env[k] })
	if err != nil || back.JobID != "j" || back.GitURL != j.GitURL || strings.Join(back.Command, "|") != "a|b c" || back.Timeout != worker.DefaultTimeout {
		t.Fatalf("%+v %v", back, err)
	}
}
