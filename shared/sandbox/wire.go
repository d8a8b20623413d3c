package sandbox

import (
	"errors"
	"time"
)

// The agent's HTTP API, shared by the agent (shared/sandbox/agent) and the Client. Every request
// carries the per-session secret in SecretHeader; on Cloud Run the Authorization header is taken
// by the ID token that IAM checks, so the secret cannot travel there.
const (
	SecretHeader = "X-Codeset-Sandbox-Secret"
	// SecretEnv is where `codeset sandboxd` reads its secret when no secret file is given (Cloud
	// Run). The agent removes it from the environment its commands inherit.
	SecretEnv = "CODESET_SANDBOX_SECRET"
	// ArchiveURLEnv, ArchiveDigestEnv and ArchiveSizeEnv give `codeset sandboxd` in the base
	// image its environment archive: a signed URL of the blob store, and the digest and size its
	// bytes must have. It unpacks the archive at its work dir before it serves.
	ArchiveURLEnv    = "CODESET_SANDBOX_ARCHIVE_URL"
	ArchiveDigestEnv = "CODESET_SANDBOX_ARCHIVE_DIGEST"
	ArchiveSizeEnv   = "CODESET_SANDBOX_ARCHIVE_SIZE"

	PathHealth     = "/v1/health"
	PathExec       = "/v1/exec"
	PathStrReplace = "/v1/str_replace"
	PathUpload     = "/v1/upload"  // PUT, raw bytes; ?path=…&executable=true
	PathVerify     = "/v1/verify"  // an oracle's agent only
	PathChanges    = "/v1/changes" // GET: the agent's changes as a layer (agents started with change tracking)
	// PathRuns: POST starts a command the agent runs on its own, by the caller's id, and waits a
	// while for it (RunRequest); GET PathRuns/{id}?wait=30s waits for it again. A command that
	// runs for an hour is never tied to one request: each caller waits for a slice of it.
	PathRuns = "/v1/runs"
)

// RunRequest is the body of POST PathRuns. The ID is the caller's: a second request with an id
// the agent knows never starts the command again, it waits for the one under way.
type RunRequest struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	// Verify, instead of a command, runs the oracle (an oracle's agent only): its answer is the
	// run's Answer.
	Verify  *VerifyRequest `json:"verify,omitempty"`
	Timeout time.Duration  `json:"timeout"` // nanoseconds; at most 0 means the agent's default
	Wait    time.Duration  `json:"wait"`    // how long this request waits for the end (0: not at all)
}

// RunState answers PathRuns: the command's result once it has ended.
type RunState struct {
	ID     string        `json:"id"`
	Done   bool          `json:"done"`
	Result *ExecResult   `json:"result,omitempty"` // a command's
	Answer *OracleAnswer `json:"answer,omitempty"` // an oracle's
}

// MaxRunID bounds a run's id (the caller's interaction id fits many times over).
const MaxRunID = 128

// ErrNoSuchRun: the agent knows no run of that id (it never started it, or it restarted since, or
// the result was dropped long after it ended).
var ErrNoSuchRun = errors.New("sandbox: the agent knows no such run")

// MaxChangesBytes caps the agent's changes that travel to an oracle over HTTP (file contents):
// far above any fix, and, base64 in JSON, under the 32 MiB one Cloud Run request may carry.
const MaxChangesBytes = 16 << 20

// OutputLimit caps stdout and stderr of one command, each; the rest is dropped and the
// truncation said in the result's message.
const OutputLimit = 1 << 20

// ErrRejected: the agent understood the request and refused it (an upload onto a directory, a
// test patch that does not apply, a path it may not write). The wrapped message says why; it is
// the user's problem, not the infrastructure's.
var ErrRejected = errors.New("sandbox: request rejected")

// Why the agent refused a request, when the caller acts on it (the verifier chooses the job's
// error code by it).
const (
	RejectTestPatch = "test_patch" // the sample's test patch cannot be read or does not apply
	RejectChanges   = "changes"    // the agent's changes cannot be carried or applied
	// ReasonNoSuchRun is the reason of the 404 of PathRuns/{id} for a run the agent does not know
	// (a 404 without it is a route the agent lacks: an older agent, which is unreachable for this).
	ReasonNoSuchRun = "no_such_run"
)

// Rejection is a request the agent refused: errors.Is(err, ErrRejected) holds for it, and
// Reason says why when the caller needs to tell (RejectTestPatch, RejectChanges, or "").
type Rejection struct {
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return ErrRejected.Error() + ": " + r.Message }

// Is makes a Rejection an ErrRejected.
func (r *Rejection) Is(target error) bool { return target == ErrRejected }

// ExecRequest is the body of POST PathExec.
type ExecRequest struct {
	Command string        `json:"command"`
	Timeout time.Duration `json:"timeout"` // nanoseconds; at most 0 means the agent's default
}

// StrReplaceRequest is the body of POST PathStrReplace.
type StrReplaceRequest struct {
	Path string `json:"path"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// StrReplaceResponse answers POST PathStrReplace.
type StrReplaceResponse struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// UploadResponse answers PUT PathUpload.
type UploadResponse struct {
	Path string `json:"path"` // absolute path written
	Size int64  `json:"size_bytes"`
}

// Health answers GET PathHealth.
type Health struct {
	Status  string `json:"status"`
	WorkDir string `json:"work_dir"`
	PID     int    `json:"pid"`
}

// ErrorResponse is every non-2xx answer of the agent.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"` // a refusal's Rejection.Reason
}

// OracleAnswer is what a one-shot oracle (`codeset sandboxd --oracle-request`) prints on its
// stdout: the result, or why it refused the request (the user's problem), or why it failed.
type OracleAnswer struct {
	Result   *VerifyResult `json:"result,omitempty"`
	Rejected string        `json:"rejected,omitempty"`
	Reason   string        `json:"reason,omitempty"` // the refusal's Rejection.Reason
	Error    string        `json:"error,omitempty"`
}
