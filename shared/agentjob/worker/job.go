// Package worker is the work of one agent job wherever it runs, as `codeset agent-job run`: get
// the repository at the ref, run the agent in it (the built-in demo, or the agent's command),
// collect the knowledge base, and deliver it.
//
// The same binary runs it in both places, configured by the same environment (Job.Env, read
// back by FromEnv):
//
//   - locally the local runner has prepared the repository (CODESET_AGENT_JOB_PREPARED) and
//     runs the worker in a sandbox with no network; the worker writes its Outcome to the file
//     CODESET_AGENT_JOB_OUTPUT and the runner stores the result and reports it;
//   - in a Cloud Run job's runner image the worker clones the repository (or downloads its
//     environment archive by a signed URL), PUTs the Result JSON to CODESET_AGENT_JOB_RESULT_URL
//     and POSTs the completion, with the secret, to CODESET_AGENT_JOB_COMPLETION_URL.
package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
)

// The environment of `codeset agent-job run`.
const (
	EnvJobID         = "CODESET_AGENT_JOB_ID"
	EnvRepo          = "CODESET_AGENT_JOB_REPO"
	EnvRef           = "CODESET_AGENT_JOB_REF"
	EnvAgent         = "CODESET_AGENT_JOB_AGENT"          // the agent's id
	EnvCommand       = "CODESET_AGENT_JOB_COMMAND"        // JSON list; empty: the built-in demo
	EnvGitURL        = "CODESET_AGENT_JOB_GIT_URL"        // clone this
	EnvGitToken      = "CODESET_AGENT_JOB_GIT_TOKEN"      // with this token (never logged)
	EnvArchiveURL    = "CODESET_AGENT_JOB_ARCHIVE_URL"    // or download this environment archive
	EnvArchiveDigest = "CODESET_AGENT_JOB_ARCHIVE_DIGEST" // checked against this digest
	EnvArchiveSize   = "CODESET_AGENT_JOB_ARCHIVE_SIZE"   // and size
	EnvWorkDir       = "CODESET_AGENT_JOB_WORK_DIR"       // where the repository is (or goes)
	EnvPrepared      = "CODESET_AGENT_JOB_PREPARED"       // "1": the repository is at the work dir already
	EnvOutput        = "CODESET_AGENT_JOB_OUTPUT"         // locally: write the Outcome here and deliver nothing
	EnvCompletionURL = "CODESET_AGENT_JOB_COMPLETION_URL"
	EnvProgressURL   = "CODESET_AGENT_JOB_PROGRESS_URL"
	EnvSecret        = "CODESET_AGENT_JOB_SECRET" // the completion secret (never logged)
	EnvResultURL     = "CODESET_AGENT_JOB_RESULT_URL"
	EnvTimeout       = "CODESET_AGENT_JOB_TIMEOUT"     // how long the agent may run, a Go duration
	EnvCPUSeconds    = "CODESET_AGENT_JOB_CPU_SECONDS" // RLIMIT_CPU of the agent (0: none)
	EnvFileSize      = "CODESET_AGENT_JOB_FILE_SIZE"   // RLIMIT_FSIZE, bytes (0: none)
	EnvOpenFiles     = "CODESET_AGENT_JOB_OPEN_FILES"  // RLIMIT_NOFILE (0: none)
	EnvProcs         = "CODESET_AGENT_JOB_PROCS"       // RLIMIT_NPROC (0: none; root ignores it)
)

// secretEnv are the variables the agent's command never inherits.
var secretEnv = []string{EnvSecret, EnvGitToken, EnvResultURL, EnvCompletionURL, EnvProgressURL, EnvArchiveURL}

// DefaultTimeout bounds the agent when the job says nothing: well under the core's 2 h, after
// which it fails and refunds the job anyway.
const DefaultTimeout = time.Hour

// Limits bound the agent's process tree (rlimits, inherited by every process it starts).
type Limits struct {
	CPUSeconds, FileSize, OpenFiles, Procs int64
}

// Job is one job as the worker gets it.
type Job struct {
	JobID, Repo, Ref string
	AgentID          string
	Command          []string // empty: the built-in demo
	GitURL, GitToken string
	ArchiveURL       string
	Archive          *blob.Ref
	WorkDir          string
	Prepared         bool
	Output           string
	CompletionURL    string
	ProgressURL      string
	Secret           string
	ResultURL        string
	Timeout          time.Duration
	Limits           Limits
}

// Outcome is what the worker writes to Job.Output: how the job ended and, when it completed,
// its result.
type Outcome struct {
	Outcome      string           `json:"outcome"`
	ErrorMessage string           `json:"error_message,omitempty"`
	Result       *agentjob.Result `json:"result,omitempty"`
}

// Env is the job as the environment of `codeset agent-job run` (only the variables set).
func (j Job) Env() []string {
	var env []string
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add(EnvJobID, j.JobID)
	add(EnvRepo, j.Repo)
	add(EnvRef, j.Ref)
	add(EnvAgent, j.AgentID)
	if len(j.Command) > 0 {
		b, _ := json.Marshal(j.Command)
		add(EnvCommand, string(b))
	}
	add(EnvGitURL, j.GitURL)
	add(EnvGitToken, j.GitToken)
	add(EnvArchiveURL, j.ArchiveURL)
	if j.Archive != nil {
		add(EnvArchiveDigest, j.Archive.Digest)
		add(EnvArchiveSize, strconv.FormatInt(j.Archive.Size, 10))
	}
	add(EnvWorkDir, j.WorkDir)
	if j.Prepared {
		add(EnvPrepared, "1")
	}
	add(EnvOutput, j.Output)
	add(EnvCompletionURL, j.CompletionURL)
	add(EnvProgressURL, j.ProgressURL)
	add(EnvSecret, j.Secret)
	add(EnvResultURL, j.ResultURL)
	if j.Timeout > 0 {
		add(EnvTimeout, j.Timeout.String())
	}
	for _, l := range []struct {
		k string
		v int64
	}{{EnvCPUSeconds, j.Limits.CPUSeconds}, {EnvFileSize, j.Limits.FileSize}, {EnvOpenFiles, j.Limits.OpenFiles}, {EnvProcs, j.Limits.Procs}} {
		if l.v > 0 {
			add(l.k, strconv.FormatInt(l.v, 10))
		}
	}
	return env
}

// FromEnv reads the job from the environment (getenv is os.Getenv, or a map's lookup in tests).
func FromEnv(getenv func(string) string) (Job, error) {
	j := Job{JobID: getenv(EnvJobID), Repo: getenv(EnvRepo), Ref: getenv(EnvRef), AgentID: getenv(EnvAgent),
		GitURL: getenv(EnvGitURL), GitToken: getenv(EnvGitToken), ArchiveURL: getenv(EnvArchiveURL),
		WorkDir: getenv(EnvWorkDir), Prepared: getenv(EnvPrepared) == "1", Output: getenv(EnvOutput),
		CompletionURL: getenv(EnvCompletionURL), ProgressURL: getenv(EnvProgressURL), Secret: getenv(EnvSecret),
		ResultURL: getenv(EnvResultURL)}
	var problems []string
	if j.JobID == "" {
		problems = append(problems, EnvJobID+" is not set")
	}
	if j.AgentID == "" {
		problems = append(problems, EnvAgent+" is not set")
	}
	if c := getenv(EnvCommand); c != "" {
		if err := json.Unmarshal([]byte(c), &j.Command); err != nil {
			problems = append(problems, EnvCommand+" is not a JSON list of strings")
		}
	}
	if d := getenv(EnvArchiveDigest); d != "" {
		size, err := strconv.ParseInt(getenv(EnvArchiveSize), 10, 64)
		if err != nil {
			problems = append(problems, EnvArchiveSize+" is not a size")
		}
		j.Archive = &blob.Ref{Digest: d, Size: size}
	}
	if t := getenv(EnvTimeout); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			problems = append(problems, EnvTimeout+" is not a positive duration")
		}
		j.Timeout = d
	}
	for _, l := range []struct {
		k string
		p *int64
	}{{EnvCPUSeconds, &j.Limits.CPUSeconds}, {EnvFileSize, &j.Limits.FileSize}, {EnvOpenFiles, &j.Limits.OpenFiles}, {EnvProcs, &j.Limits.Procs}} {
		if v := getenv(l.k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				problems = append(problems, l.k+" is not a count")
			}
			*l.p = n
		}
	}
	switch {
	case j.Prepared:
		if j.WorkDir == "" {
			problems = append(problems, EnvPrepared+" without "+EnvWorkDir)
		}
	case j.GitURL == "" && j.ArchiveURL == "":
		problems = append(problems, "no repository: set "+EnvGitURL+" or "+EnvArchiveURL)
	case j.ArchiveURL != "" && j.Archive == nil:
		problems = append(problems, EnvArchiveURL+" without "+EnvArchiveDigest)
	}
	if j.Output == "" && (j.CompletionURL == "" || j.Secret == "" || j.ResultURL == "") {
		problems = append(problems, "nowhere to deliver: set "+EnvOutput+", or "+EnvCompletionURL+", "+EnvSecret+" and "+EnvResultURL)
	}
	if len(problems) > 0 {
		return j, errors.New("agent job: " + strings.Join(problems, "; "))
	}
	if j.Timeout == 0 {
		j.Timeout = DefaultTimeout
	}
	return j, nil
}

// redactURL is a URL without its query: a signed URL's query is a credential.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// scrub removes the secrets of j from a message bound for a log or an error_message.
func (j Job) scrub(msg string) string {
	for _, s := range []string{j.GitToken, j.Secret} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	for _, u := range []string{j.ResultURL, j.ArchiveURL} {
		if u != "" {
			msg = strings.ReplaceAll(msg, u, redactURL(u))
		}
	}
	return msg
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
