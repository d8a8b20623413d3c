// Package sandbox is where a session's work runs: the Runtime port that starts and stops one
// sandbox per session (local processes by default, Cloud Run services on GCP), the Client that
// talks to the agent inside it (`codeset sandboxd`), and the agent itself.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path"
	"time"

	"github.com/codeset/codeset/shared/blob"
)

// ErrUnreachable: the sandbox's agent could not be reached or answered nonsense. Commands that
// fail this way are reported with exit code -1000 (InfraExitCode).
var ErrUnreachable = errors.New("sandbox: agent unreachable")

// ErrNotFound: the runtime knows no sandbox for that session.
var ErrNotFound = errors.New("sandbox: no such sandbox")

// InfraExitCode is the exit code of a command that could not run because of the infrastructure;
// the official client raises on it.
const InfraExitCode = -1000

// Environment is where a sample runs: stored with each sample by the catalog.
type Environment struct {
	Image           string   `json:"image,omitempty"`        // container image (Cloud Run)
	Archive         string   `json:"archive,omitempty"`      // tar.gz of the work tree, a path on this machine (older imports)
	WorkDir         string   `json:"work_dir"`               // the repository inside the sandbox, e.g. /workspace/repo
	VerifierCommand string   `json:"verifier_command"`       // run from WorkDir by the oracle
	ReportFormat    string   `json:"report_format"`          // junit | go-test-json | pytest-rA
	ReportPaths     []string `json:"report_paths,omitempty"` // files the verifier writes (junit); empty: parse its stdout
	// ProtectedPaths are globs (relative to WorkDir, "**" for any depth) of files the grader
	// depends on beyond the test patch's and the verifier's own: the agent's changes to them are
	// not graded.
	ProtectedPaths []string `json:"protected_paths,omitempty"`
	// ArchiveRef is the tar.gz of the work tree in Spec.Blobs, where the importer stores it.
	ArchiveRef *blob.Ref `json:"archive_ref,omitempty"`
}

// TreeRoot is where the repository of an environment whose work_dir is relative sits inside
// every sandbox (the demo's "repo" is /workspace/repo), locally as on Cloud Run.
const TreeRoot = "/workspace"

// InsideWorkDir is where env's repository sits inside a sandbox: its work_dir when absolute (as
// in the sample's image), else TreeRoot/<its last element>.
func InsideWorkDir(env Environment) string {
	if path.IsAbs(env.WorkDir) {
		return path.Clean(env.WorkDir)
	}
	name := path.Base(env.WorkDir)
	if name == "." || name == "/" || name == "" {
		name = "repo"
	}
	return path.Join(TreeRoot, name)
}

// Spec asks a runtime for one sandbox.
type Spec struct {
	SessionID string
	UserID    string
	Dataset   string
	SampleID  string
	Env       Environment
	ExpiresAt time.Time
	// Secret is what the agent will ask of every request: the caller derives it (it is stored
	// nowhere). Empty: the runtime makes a random one, for a sandbox nobody reaches again.
	Secret string
	// Blobs holds Env.ArchiveRef: the App's blob store. A local runtime reads the archive from
	// it; the Cloud Run runtime hands its sandbox a signed URL of it (blob.Signer).
	Blobs blob.Store
}

// SecretOf is the secret a runtime gives the sandbox of spec: the caller's, or a random one.
func SecretOf(spec Spec) string {
	if spec.Secret != "" {
		return spec.Secret
	}
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Info is what a running sandbox is known by: with the secret, enough to reach it again after a
// restart.
type Info struct {
	Name      string    `json:"name"`     // container / service name
	URL       string    `json:"url"`      // http(s)://… or unix:///path/to.sock
	Secret    string    `json:"secret"`   // per-session secret the agent checks (Spec.Secret)
	Location  string    `json:"location"` // "local" or the GCP region
	WorkDir   string    `json:"work_dir"` // absolute path of the repository inside the sandbox
	CreatedAt time.Time `json:"created_at"`
	PID       int       `json:"pid,omitempty"` // local runtime: the agent's process
}

// Runtime starts and stops sandboxes.
type Runtime interface {
	// Start creates the sandbox and returns once its agent answers.
	Start(ctx context.Context, spec Spec) (Info, error)
	// Stop ends the sandbox and every process in it. Stopping a stopped sandbox is not an error.
	// An Info with only Name set to the session id (a Start that never returned) is enough.
	Stop(ctx context.Context, info Info) error
	// Alive reports whether the sandbox still runs and answers (used to reattach after a restart).
	Alive(ctx context.Context, info Info) bool
	// Client talks to the sandbox's agent.
	Client(info Info) Client
	// StartVerify starts, under id, the grading of the work of the sandbox started from spec: it
	// takes the agent's changes to the work tree (against the pristine environment, never from
	// the agent's own .git) and runs the oracle on them in a sandbox of its own, built fresh from
	// the pristine environment, which no process of the session can reach. The oracle then runs
	// on its own, outliving the call; an id already started is not started again. The session's
	// sandbox is not modified.
	StartVerify(ctx context.Context, info Info, spec Spec, req VerifyRequest, id string) error
	// AwaitVerify waits up to wait for the oracle run id; done is false while it runs. A request
	// the oracle refused (a test patch that does not apply) is ErrRejected; a run the runtime does
	// not know (never started, or lost with a restart) is ErrNoSuchRun.
	AwaitVerify(ctx context.Context, info Info, spec Spec, id string, wait time.Duration) (res VerifyResult, done bool, err error)
	// StopVerify stops the oracle run id, if it still runs, and frees what it holds. Stopping an
	// ended or unknown run is not an error.
	StopVerify(ctx context.Context, info Info, spec Spec, id string) error
}

// Inventory is a Runtime that can say what it runs: the leaked-sandbox sweep lists every
// sandbox and reclaims those whose session ended (a stop that failed, a start that outlived its
// session) and oracles left behind by a verification that never finished. Both runtimes
// implement it.
type Inventory interface {
	// List returns every sandbox and oracle of this runtime, whatever started it.
	List(ctx context.Context) ([]Listed, error)
	// Reclaim stops a listed sandbox and frees what it holds; one already gone is not an error.
	Reclaim(ctx context.Context, s Listed) error
}

// Listed is one sandbox as an Inventory lists it.
type Listed struct {
	SessionID string    // the session it serves, or whose work it grades (an oracle)
	Oracle    bool      // a verification's oracle rather than a session's sandbox
	Name      string    // the runtime's own name for it (a directory, a service), for Reclaim and logs
	CreatedAt time.Time // when it was created, as the runtime recorded it
}

// ExecResult is the outcome of one command.
type ExecResult struct {
	ExitCode int           `json:"exit_code"`
	Stdout   string        `json:"stdout"`
	Stderr   string        `json:"stderr"`
	Duration time.Duration `json:"duration"`
	TimedOut bool          `json:"timed_out"`
	Message  string        `json:"message"` // timeouts, truncation and limits hit are said here
	// PeakMemoryBytes is the largest resident set of the command or of any process it waited
	// for (ru_maxrss; a command starts as a copy of the agent, so it is never below the agent's
	// own); CPUTime is their user and system time. Zero when the agent does not say.
	PeakMemoryBytes int64         `json:"peak_memory_bytes,omitempty"`
	CPUTime         time.Duration `json:"cpu_time,omitempty"`
}

// VerifyRequest asks for one run of the oracle: on a fresh copy of the sample's pristine
// environment, the agent's changes (minus those to protected paths) and the test patch are
// applied, the verifier runs with its timeout and its reports are collected.
type VerifyRequest struct {
	TestPatch   string        `json:"test_patch"`   // applied after the agent's changes
	Command     string        `json:"command"`      // the verifier command
	ReportPaths []string      `json:"report_paths"` // report files to collect (relative to the work dir)
	Timeout     time.Duration `json:"timeout"`
	// Protected are the sample's protected paths (globs); the test patch's files, the
	// verifier's own files, the report paths and .git are protected whatever they say.
	Protected []string `json:"protected,omitempty"`
	// Changes is the agent's work: a layer (shared/sandbox/changes) of the session's work tree
	// against the pristine environment. Runtimes fill it; it travels to an oracle sandbox.
	Changes []byte `json:"changes,omitempty"`
}

// VerifyResult is the raw outcome of the verifier; grading happens outside the sandbox.
type VerifyResult struct {
	ExitCode int               `json:"exit_code"`
	Stdout   string            `json:"stdout"`
	Stderr   string            `json:"stderr"`
	Duration time.Duration     `json:"duration"`
	TimedOut bool              `json:"timed_out"`
	Reports  map[string]string `json:"reports"` // path -> content of each report file found
	Message  string            `json:"message"` // timeout, truncation of output or reports
	// IgnoredChanges are the paths the agent changed that were not graded (protected).
	IgnoredChanges []string `json:"ignored_changes"`
}

// Client is the agent's API.
type Client interface {
	Exec(ctx context.Context, command string, timeout time.Duration) (ExecResult, error)
	// Run starts r's command under r.ID, unless the agent knows that id already (then it is not
	// started again), and waits up to r.Wait for its end. The command runs on in the sandbox
	// whatever happens to the request: Await picks it up again, from any caller.
	Run(ctx context.Context, r RunRequest) (RunState, error)
	// Await waits up to wait for the end of run id; ErrNoSuchRun when the agent knows no such run.
	Await(ctx context.Context, id string, wait time.Duration) (RunState, error)
	// StrReplace replaces exactly one occurrence; ok=false with the reason otherwise.
	StrReplace(ctx context.Context, path, old, new string) (ok bool, message string, err error)
	// Upload writes content (parents created), optionally executable; returns the bytes written.
	Upload(ctx context.Context, path string, content []byte, executable bool) (int64, error)
	// Verify runs the oracle in the agent's own tree, which must be a fresh pristine copy:
	// only an oracle sandbox is asked this (Runtime.StartVerify).
	Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error)
}
