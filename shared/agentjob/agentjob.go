// Package agentjob is the interface between the agent-job core (endpoints, events, billing) and
// the runners that take a repository, run a coding agent in it and store the knowledge base it
// writes.
//
// Where the result lives, and how the core learns of it:
//
//   - Locally (Spec.Blobs set, the local runner): the runner stores the Result JSON with
//     Blobs.Put and hands its blob.Ref to the Report callback with the outcome. The Ref is nil
//     when the outcome is "error".
//   - On GCP (Spec.ResultURL set, the Cloud Run Jobs runner): `codeset agent-job run` inside the
//     runner image PUTs the Result JSON (Content-Type application/json) to the signed ResultURL,
//     whose object name the core chose for the job, and only then POSTs the completion to
//     CompletionURL. The completion body is CompletionRequest: the spec's fields plus
//     result_ref, the digest and size of the bytes it PUT. The core reads the object it named
//     (result_ref lets it check that what it reads is what the runner wrote) and keeps it in
//     its blob store. A completion with outcome "completed" always follows a successful PUT.
//
// The completion secret travels only in Spec.Secret (locally it never leaves the process; on
// GCP it is an environment override of one execution) and in the completion body; it is never
// logged, and neither is Source.Token.
package agentjob

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/codeset/codeset/shared/blob"
)

// Agent is one configured coding agent.
type Agent struct {
	ID      string   `json:"id"`                // "demo", "claude_code", "cursor", "codex", "copilot", "gemini_cli", ...
	Name    string   `json:"name"`              // display name
	Command []string `json:"command,omitempty"` // locally: the command the runner runs in the repository (empty for "demo": built in)
	Image   string   `json:"image,omitempty"`   // on GCP: the Cloud Run job image that runs it
}

// DemoID is the built-in agent: deterministic, offline, written in Go.
const DemoID = "demo"

// Outcomes of a job, as the completion endpoint takes them.
const (
	OutcomeCompleted = "completed"
	OutcomeError     = "error"
)

// agentID keeps IDs to what is safe in a URL, an environment variable value and a file name.
var agentID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Agents is the table of configured agents: the built-in demo plus those of the setting
// CODESET_AGENTS (JSON list of Agent), which may also override the demo.
func Agents(setting string) ([]Agent, error) {
	agents := []Agent{{ID: DemoID, Name: "Demo (built in)"}}
	if setting == "" {
		return agents, nil
	}
	var configured []Agent
	if err := json.Unmarshal([]byte(setting), &configured); err != nil {
		return nil, fmt.Errorf("CODESET_AGENTS: not a JSON list of agents: %w", err)
	}
	seen := map[string]bool{}
	for _, ag := range configured {
		if !agentID.MatchString(ag.ID) {
			return nil, fmt.Errorf("CODESET_AGENTS: agent id %q: want lower-case letters, digits, '_' or '-'", ag.ID)
		}
		if seen[ag.ID] {
			return nil, fmt.Errorf("CODESET_AGENTS: agent %q is listed twice", ag.ID)
		}
		seen[ag.ID] = true
		if ag.Name == "" {
			ag.Name = ag.ID
		}
		if ag.ID == DemoID {
			agents[0] = ag // an override of the demo keeps its place at the top
			continue
		}
		agents = append(agents, ag)
	}
	return agents, nil
}

// Find is the agent with that id in agents.
func Find(agents []Agent, id string) (Agent, bool) {
	for _, ag := range agents {
		if ag.ID == id {
			return ag, true
		}
	}
	return Agent{}, false
}

// Source is where the runner gets the repository: a git URL (with a token for GitHub, never logged),
// or a local directory holding a git repository, or an environment archive in the blob store
// (the demo dataset's repositories).
type Source struct {
	GitURL  string
	Token   string
	Dir     string
	Archive *blob.Ref
}

// Spec is one job as the runner gets it.
type Spec struct {
	JobID, Repo, Ref string
	Agent            Agent
	Source           Source
	CompletionURL    string     // POST {secret, outcome, error_message} (the API's completion endpoint)
	ProgressURL      string     // POST {secret, progress_pct, progress_stage} (an extension endpoint)
	Secret           string     // the completion secret, given only to the runner
	Blobs            blob.Store // where the result goes (locally); on GCP ResultURL is used
	ResultURL        string     // GCP: a signed URL to PUT the result JSON to
}

// Result is the knowledge base the runner stores: {job_id, repo, ref, commit, files}.
type Result struct {
	JobID  string `json:"job_id"`
	Repo   string `json:"repo"`
	Ref    string `json:"ref"`
	Commit string `json:"commit"`
	Files  []File `json:"files"`
}

// File is one file of the knowledge base, written for one agent.
type File struct {
	Path    string `json:"path"`
	AgentID string `json:"agent_id"`
	Content string `json:"content"`
}

// Runner launches a job and returns at once; the job reports back through CompletionURL
// (or, for a runner that watches the job itself, through Report). Launching the same JobID
// twice must not run it twice.
type Runner interface {
	Launch(ctx context.Context, spec Spec) error
}

// Report is how a runner that cannot reach CompletionURL (a local sandbox without network)
// says how a job ended: the core wires it to the same code as the completion endpoint.
type Report func(ctx context.Context, jobID, secret, outcome, errorMessage string, result *blob.Ref) error

// CompletionRequest is the body the runner image POSTs to CompletionURL: the spec's
// AgentJobCompletionRequest plus result_ref, which the spec's model leaves out and an endpoint
// that does not know it ignores.
type CompletionRequest struct {
	Secret       string    `json:"secret"`
	Outcome      string    `json:"outcome"`
	ErrorMessage string    `json:"error_message,omitempty"`
	ResultRef    *blob.Ref `json:"result_ref,omitempty"`
}

// ProgressRequest is the body the runner image POSTs to ProgressURL, best effort: a lost
// progress report changes nothing but what a reader sees meanwhile.
type ProgressRequest struct {
	Secret        string `json:"secret"`
	ProgressPct   int    `json:"progress_pct"`
	ProgressStage string `json:"progress_stage"`
}

// Instruction is where a target agent reads its instructions in a repository.
type Instruction struct {
	AgentID string
	Path    string // a file, or for cursor a directory of rule files (.mdc)
	Dir     bool
}

// Instructions are the instruction files of the agents a knowledge base is written for, in the
// form each reads.
var Instructions = []Instruction{
	{AgentID: "claude_code", Path: "CLAUDE.md"},
	{AgentID: "codex", Path: "AGENTS.md"},
	{AgentID: "copilot", Path: ".github/copilot-instructions.md"},
	{AgentID: "cursor", Path: ".cursor/rules", Dir: true},
	{AgentID: "gemini_cli", Path: "GEMINI.md"},
}

// InstructionAgent is the agent that reads the file at path (slash-separated, relative to the
// repository), or "" when no agent reads it as instructions.
func InstructionAgent(path string) string {
	for _, in := range Instructions {
		if !in.Dir && path == in.Path {
			return in.AgentID
		}
		if in.Dir && strings.HasPrefix(path, in.Path+"/") && strings.HasSuffix(path, ".mdc") && !strings.Contains(strings.TrimPrefix(path, in.Path+"/"), "/") {
			return in.AgentID
		}
	}
	return ""
}
