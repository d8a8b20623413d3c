package events

// The agent-job aggregate: one stream per job, "agentjob-<job id>". A coding agent studies a
// repository and leaves a knowledge base in the blob store. Its money moves on the user's
// account stream (AgentJobCharged, AgentJobRefunded); what the job stream decides is when:
//
//	requested ─┬─> accepted (charged: queued) ─> started (the launcher's claim: running)
//	           │        │                          ─> progress* ─> completed | failed (refund)
//	           │        └──────────────────────────────────────────> failed (refund)
//	           └─> rejected (never charged: the request answered 402; nobody lists it)
//
// A job fails once (a terminal status is never left), so the refund it carries is decided once
// however many error completions, timeouts and launch failures race for it; the account's own
// decision (Account.RefundAgentJob, keyed by job id) guards it a second time.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"
)

// AgentJobStreamPrefix starts every agent job's stream.
const AgentJobStreamPrefix = "agentjob-"

// AgentJobStream is the stream of an agent job.
func AgentJobStream(jobID string) string { return AgentJobStreamPrefix + jobID }

// Event types of the agent-job aggregate.
const (
	AgentJobRequested = "agent_job.requested"
	AgentJobAccepted  = "agent_job.accepted" // the charge is on the account: the job is queued
	AgentJobRejected  = "agent_job.rejected" // never charged (the balance did not allow it)
	AgentJobStarted   = "agent_job.started"  // the launcher's claim: launched once
	AgentJobProgress  = "agent_job.progress"
	AgentJobCompleted = "agent_job.completed"
	AgentJobFailed    = "agent_job.failed"
)

// Statuses of an agent job. Requested and rejected are never shown: a request answers only
// once its job is accepted, and a rejected one answered 402.
const (
	AgentJobStatusRequested = "requested"
	AgentJobStatusQueued    = "queued"
	AgentJobStatusRunning   = "running"
	AgentJobStatusCompleted = "completed"
	AgentJobStatusError     = "error"
	AgentJobStatusRejected  = "rejected"
)

// Outcomes a runner reports in a completion.
const (
	OutcomeCompleted = "completed"
	OutcomeError     = "error"
)

// Error codes of a failed agent job.
const (
	CodeAgentFailed     = "AGENT_FAILED"      // the runner reported outcome "error"
	CodeNoResult        = "RESULT_NOT_STORED" // outcome "completed", but no readable result in the blob store
	CodeLaunchFailed    = "LAUNCH_FAILED"     // the runner refused to start the job
	CodeAgentJobTimeout = "AGENT_JOB_TIMEOUT" // no completion within the job's time
)

// Source kinds: where the runner gets the repository.
const (
	SourceGitHub  = "github"  // cloned from GitHub with the user's token, read at launch
	SourceCatalog = "catalog" // a catalog sample's environment archive in the blob store
	SourceLocal   = "local"   // a git repository under the server's local repositories directory
)

// Domain errors of the agent-job aggregate.
var (
	// ErrAgentJobSecret: the completion secret is missing or wrong.
	ErrAgentJobSecret = errors.New("agent job: wrong completion secret")
	// ErrAgentJobConflict: a completion that contradicts how the job ended.
	ErrAgentJobConflict = errors.New("agent job: already ended otherwise")
	// ErrAgentJobRejected: the job was rejected before it could be accepted.
	ErrAgentJobRejected = errors.New("agent job: rejected")
	// ErrInsufficientBalance: the account cannot pay for the job.
	ErrInsufficientBalance = errors.New("account: insufficient balance")
)

// AgentJobSource is where the repository comes from. It holds no credential: a GitHub token is
// read, sealed, from the user's record when the job is launched.
type AgentJobSource struct {
	Kind    string   `json:"kind"`              // SourceGitHub, SourceCatalog or SourceLocal
	Archive *BlobRef `json:"archive,omitempty"` // SourceCatalog: the sample's environment archive
	Commit  string   `json:"commit,omitempty"`  // SourceCatalog: the commit the archive holds
}

// AgentJobRequestedData is the data of AgentJobRequested. The price and the time the job may
// take are fixed when it is asked for, so a later configuration change leaves it as it was.
type AgentJobRequestedData struct {
	JobID          string         `json:"job_id"`
	UserID         string         `json:"user_id"`
	Repo           string         `json:"repo"` // owner/name
	Ref            string         `json:"ref"`  // "": the repository's default
	AgentID        string         `json:"agent_id"`
	CostCents      int64          `json:"cost_cents"`
	Source         AgentJobSource `json:"source"`
	TimeoutSeconds int64          `json:"timeout_seconds"`
	CreatedAt      time.Time      `json:"created_at"`
}

// AgentJobAcceptedData is the data of AgentJobAccepted.
type AgentJobAcceptedData struct {
	ChargedCents int64     `json:"charged_cents"`
	AcceptedAt   time.Time `json:"accepted_at"`
}

// AgentJobRejectedData is the data of AgentJobRejected.
type AgentJobRejectedData struct {
	Reason     string    `json:"reason"`
	RejectedAt time.Time `json:"rejected_at"`
}

// AgentJobStartedData is the data of AgentJobStarted. The completion secret is generated by the
// launcher, which alone hands it to the runner; only its SHA-256 is kept.
type AgentJobStartedData struct {
	SecretHash string    `json:"secret_hash"` // hex SHA-256 of the completion secret
	StartedAt  time.Time `json:"started_at"`
}

// AgentJobProgressData is the data of AgentJobProgress.
type AgentJobProgressData struct {
	Pct   int       `json:"progress_pct"`
	Stage string    `json:"progress_stage"`
	At    time.Time `json:"at"`
}

// AgentJobCompletion is what a runner reported: compared with a repeated completion, which is
// answered unchanged when identical and refused (409) otherwise.
type AgentJobCompletion struct {
	Outcome      string `json:"outcome"`
	ErrorMessage string `json:"error_message,omitempty"`
}

// AgentJobCompletedData is the data of AgentJobCompleted: the knowledge base is stored.
type AgentJobCompletedData struct {
	Completion  AgentJobCompletion `json:"completion"`
	ResultRef   BlobRef            `json:"result_ref"`
	Commit      string             `json:"commit"`
	CompletedAt time.Time          `json:"completed_at"`
}

// AgentJobFailedData is the data of AgentJobFailed. RefundCents is what the account gives back
// (all that was charged); Completion is set when a runner's completion ended the job.
type AgentJobFailedData struct {
	Error       ErrorInfo           `json:"error"`
	Completion  *AgentJobCompletion `json:"completion,omitempty"`
	RefundCents int64               `json:"refund_cents"`
	FailedAt    time.Time           `json:"failed_at"`
}

// AgentJob is the state of one job, folded from its stream.
type AgentJob struct {
	Version int64
	AgentJobRequestedData
	Status        string
	ChargedCents  int64
	SecretHash    string
	StartedAt     time.Time
	EndedAt       time.Time
	ProgressPct   int
	ProgressStage string
	ResultRef     *BlobRef
	Commit        string
	Error         *ErrorInfo
	Completion    *AgentJobCompletion
	RefundCents   int64
}

// StreamVersion is the version of the job's stream folded.
func (j *AgentJob) StreamVersion() int64 { return j.Version }

// AgentJobOf folds a job's stream.
func AgentJobOf(evs []Envelope) (*AgentJob, error) {
	j := &AgentJob{}
	for _, e := range evs {
		if err := j.Apply(e); err != nil {
			return j, err
		}
	}
	return j, nil
}

// Apply folds one event of the job's stream.
func (j *AgentJob) Apply(e Envelope) error {
	switch e.Type {
	case AgentJobRequested:
		if err := e.Decode(&j.AgentJobRequestedData); err != nil {
			return err
		}
		j.Status = AgentJobStatusRequested
	case AgentJobAccepted:
		var d AgentJobAcceptedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.Status, j.ChargedCents = AgentJobStatusQueued, d.ChargedCents
	case AgentJobRejected:
		var d AgentJobRejectedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.Status, j.EndedAt = AgentJobStatusRejected, d.RejectedAt
		j.Error = &ErrorInfo{Code: "REJECTED", Message: d.Reason}
	case AgentJobStarted:
		var d AgentJobStartedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.Status, j.SecretHash, j.StartedAt = AgentJobStatusRunning, d.SecretHash, d.StartedAt
	case AgentJobProgress:
		var d AgentJobProgressData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.ProgressPct, j.ProgressStage = d.Pct, d.Stage
	case AgentJobCompleted:
		var d AgentJobCompletedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.Status, j.EndedAt, j.Commit = AgentJobStatusCompleted, d.CompletedAt, d.Commit
		j.ResultRef, j.Completion, j.ProgressPct = &d.ResultRef, &d.Completion, 100
	case AgentJobFailed:
		var d AgentJobFailedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		j.Status, j.EndedAt, j.Error, j.Completion, j.RefundCents = AgentJobStatusError, d.FailedAt, &d.Error, d.Completion, d.RefundCents
	}
	j.Version = e.Version
	return nil
}

// Ended reports whether the job reached an end it never leaves.
func (j *AgentJob) Ended() bool {
	return j.Status == AgentJobStatusCompleted || j.Status == AgentJobStatusError || j.Status == AgentJobStatusRejected
}

// Live reports whether the job was charged and has not ended: queued or running.
func (j *AgentJob) Live() bool {
	return j.Status == AgentJobStatusQueued || j.Status == AgentJobStatusRunning
}

// HashSecret is the hex SHA-256 of a completion secret: what the job keeps of it.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches compares secret with the job's in constant time (on the hashes, which have a
// fixed length, so nothing about the secret's length or content leaks through timing). A job
// with no secret yet (not launched) matches nothing.
func (j *AgentJob) SecretMatches(secret string) bool {
	if j.SecretHash == "" || secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(j.SecretHash)) == 1
}

// RequestAgentJob decides a new job. The caller has validated the request and the caller's
// access to the repository.
func RequestAgentJob(eventID string, d AgentJobRequestedData) (Envelope, error) {
	d.CreatedAt = stamp(d.CreatedAt)
	return New(eventID, d.UserID, AgentJobRequested, d.CreatedAt, d)
}

// Accept decides that the job is paid for (the charge is on the account): it is queued. A job
// rejected meanwhile (the reaper found no charge) is ErrAgentJobRejected: the caller refunds.
func (j *AgentJob) Accept(eventID string, at time.Time, charged int64) ([]Envelope, error) {
	switch j.Status {
	case AgentJobStatusRequested:
	case AgentJobStatusRejected:
		return nil, ErrAgentJobRejected
	default:
		return nil, nil
	}
	return one(New(eventID, j.UserID, AgentJobAccepted, at, AgentJobAcceptedData{ChargedCents: charged, AcceptedAt: stamp(at)}))
}

// Reject decides that a requested job will never run: it was not charged.
func (j *AgentJob) Reject(eventID string, at time.Time, reason string) ([]Envelope, error) {
	if j.Status != AgentJobStatusRequested {
		return nil, nil
	}
	return one(New(eventID, j.UserID, AgentJobRejected, at, AgentJobRejectedData{Reason: reason, RejectedAt: stamp(at)}))
}

// Start decides the launcher's claim of a queued job, with the hash of the secret it will hand
// the runner; for any other job it decides nothing, so a job is launched once.
func (j *AgentJob) Start(eventID string, at time.Time, secretHash string) ([]Envelope, error) {
	if j.Status != AgentJobStatusQueued {
		return nil, nil
	}
	return one(New(eventID, j.UserID, AgentJobStarted, at, AgentJobStartedData{SecretHash: secretHash, StartedAt: stamp(at)}))
}

// Progress decides a runner's progress report on a running job; a report that changes nothing,
// or comes after the end, decides nothing.
func (j *AgentJob) Progress(eventID string, at time.Time, pct int, stage string) ([]Envelope, error) {
	if j.Status != AgentJobStatusRunning || (pct == j.ProgressPct && stage == j.ProgressStage) {
		return nil, nil
	}
	return one(New(eventID, j.UserID, AgentJobProgress, at, AgentJobProgressData{Pct: pct, Stage: stage, At: stamp(at)}))
}

// Complete decides a runner's completion of a running job: completed with its stored result,
// or failed and refunded when the outcome is "error" or no result was stored (result nil). A
// repeat of the completion that ended the job decides nothing; any other completion of an
// ended job is ErrAgentJobConflict. The secret is the caller's to check (SecretMatches).
func (j *AgentJob) Complete(eventID string, at time.Time, c AgentJobCompletion, result *BlobRef, commit, whyNoResult string) ([]Envelope, error) {
	if j.Ended() {
		if j.Completion != nil && *j.Completion == c {
			return nil, nil
		}
		return nil, ErrAgentJobConflict
	}
	if !j.Live() {
		return nil, ErrAgentJobConflict
	}
	switch {
	case c.Outcome == OutcomeCompleted && result != nil:
		return one(New(eventID, j.UserID, AgentJobCompleted, at, AgentJobCompletedData{Completion: c, ResultRef: *result, Commit: commit, CompletedAt: stamp(at)}))
	case c.Outcome == OutcomeCompleted:
		return j.fail(eventID, at, ErrorInfo{Code: CodeNoResult, Message: whyNoResult}, &c)
	default:
		msg := c.ErrorMessage
		if msg == "" {
			msg = "the agent reported an error"
		}
		return j.fail(eventID, at, ErrorInfo{Code: CodeAgentFailed, Message: msg}, &c)
	}
}

// Fail decides that a charged job that has not ended will not end on its own (the runner
// refused it, or no completion came in time): failed, with all it was charged to refund.
func (j *AgentJob) Fail(eventID string, at time.Time, code, message string) ([]Envelope, error) {
	if !j.Live() {
		return nil, nil
	}
	return j.fail(eventID, at, ErrorInfo{Code: code, Message: message}, nil)
}

func (j *AgentJob) fail(eventID string, at time.Time, info ErrorInfo, c *AgentJobCompletion) ([]Envelope, error) {
	return one(New(eventID, j.UserID, AgentJobFailed, at, AgentJobFailedData{Error: info, Completion: c, RefundCents: j.ChargedCents, FailedAt: stamp(at)}))
}
