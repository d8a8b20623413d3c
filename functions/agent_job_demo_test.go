package functions

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/codeset/codeset/demo"
	"github.com/codeset/codeset/shared/config"
)

// TestAgentJobWithTheDemoAgent: the whole flow with the real local runner and the built-in demo
// agent, as `make run` serves it, on both backends: a job on a demo dataset's repository is
// charged, runs in a sandboxed `codeset agent-job run`, and leaves a knowledge base with one
// instruction file per target agent, filtered by ?agent_id=.
func TestAgentJobWithTheDemoAgent(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"embedded", "gcp"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := newVerifyEnvOn(t, backend, func(c *config.Config) { c.SandboxBinary = sandboxBinary(t) })
			if env.a.AgentRunner == nil {
				t.Fatal("the App opened no agent-job runner")
			}
			env.credit("alice")
			rows, err := demo.Rows()
			if err != nil {
				t.Fatal(err)
			}
			repo := rows[0].Content.Repo
			var job struct {
				JobID  string `json:"job_id"`
				Status string `json:"status"`
			}
			env.expect(http.StatusAccepted, "alice", "POST", "/agent-jobs", map[string]any{"repo": repo, "agent_id": "demo"}, &job)
			var got struct {
				Status          string `json:"status"`
				ResultAvailable bool   `json:"result_available"`
				ErrorMessage    string `json:"error_message"`
				Commit          string `json:"commit"`
			}
			eventually(t, 2*time.Minute, func() (bool, string) {
				env.expect(http.StatusOK, "alice", "GET", "/agent-jobs/"+job.JobID, nil, &got)
				if got.Status == "error" {
					t.Fatalf("the demo job failed: %s", got.ErrorMessage)
				}
				return got.Status == "completed", "the demo job is " + got.Status
			})
			if !got.ResultAvailable {
				t.Fatal("completed without a result")
			}
			var res struct {
				Repo  string `json:"repo"`
				Files []struct {
					Path    string `json:"path"`
					AgentID string `json:"agent_id"`
					Content string `json:"content"`
				} `json:"files"`
			}
			env.expect(http.StatusOK, "alice", "GET", "/agent-jobs/"+job.JobID+"/result", nil, &res)
			agents := map[string]string{}
			for _, f := range res.Files {
				agents[f.AgentID] = f.Path
				if len(f.Content) < 200 {
					t.Errorf("%s is thin: %q", f.Path, f.Content)
				}
			}
			for agent, path := range map[string]string{"claude_code": "CLAUDE.md", "codex": "AGENTS.md", "gemini_cli": "GEMINI.md", "copilot": ".github/copilot-instructions.md"} {
				if agents[agent] != path {
					t.Errorf("%s's file is %q, want %q", agent, agents[agent], path)
				}
			}
			if _, ok := agents["cursor"]; !ok || res.Repo != repo {
				t.Errorf("the knowledge base: repo %q, agents %v", res.Repo, agents)
			}
			code, raw := env.call("alice", "GET", "/agent-jobs/"+job.JobID+"/result?agent_id=codex", nil)
			var one struct {
				Files []struct {
					AgentID string `json:"agent_id"`
				} `json:"files"`
			}
			json.Unmarshal(raw, &one)
			if code != http.StatusOK || len(one.Files) != 1 || one.Files[0].AgentID != "codex" {
				t.Fatalf("?agent_id=codex: %d %s", code, raw)
			}
			if code, _ := env.call("bob", "GET", "/agent-jobs/"+job.JobID+"/result", nil); code != http.StatusNotFound {
				t.Fatalf("another user's result: %d", code)
			}
		})
	}
}
