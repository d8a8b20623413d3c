package cloudrunjobs_test

import (
	"bytes"
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
	"time"

	"google.golang.org/api/option"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/cloudrunjobs"
	"github.com/codeset/codeset/shared/agentjob/cloudrunjobs/fakejobs"
	"github.com/codeset/codeset/shared/agentjob/worker"
	"github.com/codeset/codeset/shared/blob"
)

const base = "projects/p/locations/europe-west1/jobs/codeset-agent"

// api is the backend's side: the signed result URL and the completion endpoint.
type api struct {
	*httptest.Server
	mu          sync.Mutex
	results     map[string][]byte
	completions map[string][]agentjob.CompletionRequest
}

func newAPI(t *testing.T) *api {
	a := &api{results: map[string][]byte{}, completions: map[string][]agentjob.CompletionRequest{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		if id, ok := strings.CutPrefix(r.URL.Path, "/results/"); ok && r.Method == http.MethodPut {
			a.results[id] = b
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/agent-jobs/"); ok && strings.HasSuffix(rest, "/completion") {
			var c agentjob.CompletionRequest
			json.Unmarshal(b, &c)
			id := strings.TrimSuffix(rest, "/completion")
			a.completions[id] = append(a.completions[id], c)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *api) spec(id string, agent agentjob.Agent, src agentjob.Source) agentjob.Spec {
	return agentjob.Spec{JobID: id, Repo: "acme/tool", Ref: "main", Agent: agent, Source: src, Secret: "secret-" + id,
		CompletionURL: a.URL + "/api/v1/agent-jobs/" + id + "/completion",
		ProgressURL:   a.URL + "/api/v1/agent-jobs/" + id + "/progress",
		ResultURL:     a.URL + "/results/" + id + "?X-Goog-Signature=abc"}
}

func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"tool","scripts":{"test":"vitest run"}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "index.ts"), []byte("export const x = 1\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

// fake starts the fake API whose executions run the real worker, as the runner image's entry
// point `codeset agent-job run` would, on the environment the execution was given.
func fake(t *testing.T) (*fakejobs.Server, *[]string) {
	s := fakejobs.New(t)
	s.AddJob(base, "registry.example/p/codeset/runner:1", map[string]string{"LOG_LEVEL": "info"})
	var mu sync.Mutex
	var images []string
	s.Exec = func(image string, env map[string]string) {
		mu.Lock()
		images = append(images, image)
		mu.Unlock()
		j, err := worker.FromEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Errorf("the execution's environment: %v", err)
			return
		}
		if err := worker.Run(context.Background(), j, nil, nil); err != nil {
			t.Errorf("the execution: %v", err)
		}
	}
	return s, &images
}

func runner(t *testing.T, s *fakejobs.Server, signer blob.Signer) *cloudrunjobs.Runner {
	r, err := cloudrunjobs.New(context.Background(), cloudrunjobs.Options{Project: "p", Region: "europe-west1", Job: "codeset-agent",
		Signer: signer, ClientOptions: []option.ClientOption{option.WithEndpoint(s.URL), option.WithoutAuthentication()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// The demo agent end to end: RunJob with the job as overrides, the execution delivers the
// result and the completion; launched again, by this instance or another, it runs nothing.
func TestLaunchDemo(t *testing.T) {
	s, _ := fake(t)
	a := newAPI(t)
	src := gitRepo(t)
	spec := a.spec("job1", agentjob.Agent{ID: "demo"}, agentjob.Source{GitURL: "file://" + src, Token: "ghs_token"})
	r := runner(t, s, nil)
	for range 3 {
		if err := r.Launch(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	if err := runner(t, s, nil).Launch(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	runs := s.Runs(base)
	if len(runs) != 1 {
		t.Fatalf("%d executions for one job", len(runs))
	}
	o := runs[0].GetOverrides()
	if o.GetTaskCount() != 1 || o.GetTimeout().AsDuration() <= worker.DefaultTimeout || len(o.GetContainerOverrides()) != 1 {
		t.Fatalf("overrides %v", o)
	}
	env := map[string]string{}
	for _, v := range o.GetContainerOverrides()[0].GetEnv() {
		env[v.GetName()] = v.GetValue()
	}
	want := map[string]string{worker.EnvJobID: "job1", worker.EnvRepo: "acme/tool", worker.EnvRef: "main", worker.EnvAgent: "demo",
		worker.EnvCompletionURL: spec.CompletionURL, worker.EnvProgressURL: spec.ProgressURL, worker.EnvSecret: "secret-job1",
		worker.EnvResultURL: spec.ResultURL, worker.EnvGitURL: "file://" + src, worker.EnvGitToken: "ghs_token"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("override %s = %q, want %q", k, env[k], v)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cs := a.completions["job1"]
	if len(cs) != 1 || cs[0].Outcome != "completed" || cs[0].Secret != "secret-job1" || cs[0].ResultRef == nil {
		t.Fatalf("completions %+v", cs)
	}
	var res agentjob.Result
	if err := json.Unmarshal(a.results["job1"], &res); err != nil || len(res.Files) != 5 || !strings.Contains(res.Files[0].Content, "`npm test`") {
		t.Fatalf("result %+v %v", res, err)
	}
}

// An agent with an image of its own runs on a job of its own, created from the configured one.
func TestAgentImage(t *testing.T) {
	s, images := fake(t)
	a := newAPI(t)
	agent := agentjob.Agent{ID: "claude_code", Image: "registry.example/p/codeset/claude:1",
		Command: []string{"sh", "-c", "echo '# from claude' > CLAUDE.md"}}
	r := runner(t, s, nil)
	if err := r.Launch(context.Background(), a.spec("job2", agent, agentjob.Source{GitURL: "file://" + gitRepo(t)})); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	name := base + "-claude-code"
	job := s.Job(name)
	if job == nil || job.GetTemplate().GetTemplate().GetContainers()[0].GetImage() != agent.Image || len(s.Runs(name)) != 1 || len(s.Runs(base)) != 0 {
		t.Fatalf("job %v, runs %d", job, len(s.Runs(name)))
	}
	if len(*images) != 1 || (*images)[0] != agent.Image {
		t.Fatalf("executions ran %v", *images)
	}
	// The configured job's own variables reach the agent's job too.
	if got := job.GetTemplate().GetTemplate().GetContainers()[0].GetEnv(); len(got) != 1 || got[0].GetName() != "LOG_LEVEL" {
		t.Errorf("env %v", got)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cs := a.completions["job2"]; len(cs) != 1 || cs[0].Outcome != "completed" {
		t.Fatalf("completions %+v", cs)
	}
}

// Sources Cloud Run cannot reach are refused at launch, with nothing started.
func TestUnreachableSources(t *testing.T) {
	s, _ := fake(t)
	a := newAPI(t)
	r := runner(t, s, nil)
	ref := &blob.Ref{Digest: "sha256:" + strings.Repeat("a", 64), Size: 10}
	for _, src := range []agentjob.Source{{Dir: "/srv/repos/acme/tool"}, {Archive: ref}, {}} {
		if err := r.Launch(context.Background(), a.spec("job3", agentjob.Agent{ID: "demo"}, src)); err == nil {
			t.Errorf("source %+v launched", src)
		}
	}
	if n := len(s.Runs(base)); n != 0 {
		t.Fatalf("%d executions", n)
	}
}

type signer struct{ url string }

func (s signer) SignedURL(ctx context.Context, ref blob.Ref, ttl time.Duration) (string, error) {
	return s.url + "/" + ref.Digest + "?X-Goog-Signature=sig", nil
}

// The demo dataset's repositories: the execution downloads the environment archive by a signed
// URL and checks it against its digest.
func TestArchiveSource(t *testing.T) {
	s, _ := fake(t)
	a := newAPI(t)
	tgz := filepath.Join(t.TempDir(), "env.tar.gz")
	if out, err := exec.Command("tar", "-C", gitRepo(t), "-czf", tgz, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	b, _ := os.ReadFile(tgz)
	h := blob.NewHashing(bytes.NewReader(b))
	io.Copy(io.Discard, h)
	ref := h.Ref()
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+ref.Digest || r.URL.Query().Get("X-Goog-Signature") != "sig" {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		w.Write(b)
	}))
	defer store.Close()
	r := runner(t, s, signer{store.URL})
	spec := a.spec("job4", agentjob.Agent{ID: "demo"}, agentjob.Source{Archive: &ref})
	spec.Ref = ""
	if err := r.Launch(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if cs := a.completions["job4"]; len(cs) != 1 || cs[0].Outcome != "completed" {
		t.Fatalf("completions %+v", cs)
	}
}
