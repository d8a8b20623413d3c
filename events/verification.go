package events

// The verification aggregate: one stream per verification job, "verification-<job id>". A job
// is requested (pending), claimed by the verifier (starting), runs in the session's sandbox
// (running), and ends once: completed with its graded result, in error with a code, or
// cancelled when its session ended first.

import "time"

// VerificationStream is the stream of a verification job.
func VerificationStream(jobID string) string { return "verification-" + jobID }

// VerificationStreamPrefix starts every verification stream.
const VerificationStreamPrefix = "verification-"

// Event types of the verification aggregate.
const (
	VerificationRequested = "verification.requested"
	VerificationStarted   = "verification.started" // the verifier's claim: a duplicate delivery never runs the job twice
	VerificationRunning   = "verification.running" // the verifier command was sent to the sandbox
	// VerificationStillRunning: a delivery of the verifier waited its share of the oracle, which
	// runs on in its sandbox, and hands the wait to the next delivery (this event's).
	VerificationStillRunning = "verification.still_running"
	VerificationCompleted    = "verification.completed"
	VerificationFailed       = "verification.failed"
	VerificationCancelled    = "verification.cancelled"
)

// Job statuses, as the spec's JobStatus names them.
const (
	JobPending   = "pending"
	JobStarting  = "starting"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobError     = "error"
	JobCancelled = "cancelled"
)

// Error codes of a verification job in error, besides the grader's report codes.
const (
	CodeVerifierTimeout     = "VERIFIER_TIMEOUT"     // the verifier ran past its timeout
	CodeTestPatchFailed     = "TEST_PATCH_FAILED"    // the sandbox refused to apply the sample's test patch
	CodeVerifierRejected    = "VERIFIER_REJECTED"    // the sandbox refused the verification for another reason (no verifier command, unknown base commit)
	CodeSandboxUnreachable  = "SANDBOX_UNREACHABLE"  // the session's sandbox did not answer
	CodeSampleNotFound      = "SAMPLE_NOT_FOUND"     // the session's sample is no longer in the catalog
	CodeVerifierInterrupted = "VERIFIER_INTERRUPTED" // the process running the job stopped before it ended
	CodeCancelled           = "CANCELLED"            // a cancelled job's error says why it was cancelled
	CodeResultNotStored     = "RESULT_NOT_STORED"    // the graded result was too large for an event and the blob store refused it
)

// VerificationRequestedData is the data of VerificationRequested. The timeout is fixed when the
// job is asked for, so a later configuration change does not change a job under way.
type VerificationRequestedData struct {
	JobID          string    `json:"job_id"`
	SessionID      string    `json:"session_id"`
	UserID         string    `json:"user_id"`
	Dataset        string    `json:"dataset"`
	SampleID       string    `json:"sample_id"`
	SampleVersion  int       `json:"sample_version"`
	CreatedAt      time.Time `json:"created_at"`
	TimeoutSeconds int       `json:"timeout_seconds"`
}

// VerificationStartedData is the data of VerificationStarted.
type VerificationStartedData struct {
	StartedAt time.Time `json:"started_at"`
}

// VerificationRunningData is the data of VerificationRunning.
type VerificationRunningData struct {
	RunningAt time.Time `json:"running_at"`
}

// VerificationCompletedData is the data of VerificationCompleted: the graded result.
type VerificationCompletedData struct {
	CompletedAt time.Time          `json:"completed_at"`
	Result      VerificationResult `json:"result"`
}

// VerificationResult is a graded verification: the spec's TestSuiteResult plus SWE-bench's
// resolution and the listed tests that went wrong.
type VerificationResult struct {
	Tool                     string       `json:"tool"`
	IsSuccess                bool         `json:"is_success"`
	ExecutionDurationSeconds float64      `json:"execution_duration_seconds"`
	Total                    int          `json:"total"`
	Passed                   int          `json:"passed"`
	Failed                   int          `json:"failed"`
	Skipped                  int          `json:"skipped"`
	Passes                   []TestDetail `json:"passes"`
	Failures                 []TestDetail `json:"failures"`
	Skips                    []TestDetail `json:"skips"`
	Stdout                   string       `json:"stdout"`
	Stderr                   string       `json:"stderr"`

	Resolution       string   `json:"resolution"` // FULL, PARTIAL or NO
	FailToPassFailed []string `json:"fail_to_pass_failed"`
	PassToPassFailed []string `json:"pass_to_pass_failed"`
	FailToFailPassed []string `json:"fail_to_fail_passed"`
	NotFound         []string `json:"not_found"`
	UnlistedPassed   []string `json:"unlisted_passed"`
	UnlistedFailed   []string `json:"unlisted_failed"`
	IgnoredChanges   []string `json:"ignored_changes,omitempty"` // the agent's changes not graded (protected paths)

	// ReportRef, when set, holds the whole result (this type, as JSON) in the blob store: the
	// event keeps only the summary (tool, success, counts, resolution) and the heads of stdout
	// and stderr, with the lists left out.
	ReportRef *BlobRef `json:"report_ref,omitempty"`
}

// TestDetail is one entry of a result's passes, failures and skips.
type TestDetail struct {
	Name            string  `json:"name"`
	Details         string  `json:"details"`
	Kind            string  `json:"kind,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	Count           int     `json:"count,omitempty"` // one entry standing for several tests
}

// VerificationFailedData is the data of VerificationFailed.
type VerificationFailedData struct {
	FailedAt time.Time `json:"failed_at"`
	Error    ErrorInfo `json:"error"`
}

// VerificationCancelledData is the data of VerificationCancelled.
type VerificationCancelledData struct {
	CancelledAt time.Time `json:"cancelled_at"`
	Reason      string    `json:"reason"`
}

// Verification is the state of one job, folded from its stream.
type Verification struct {
	Version int64
	VerificationRequestedData
	Status      string
	StartedAt   time.Time
	CompletedAt time.Time // when it completed, failed or was cancelled
	Result      *VerificationResult
	Error       *ErrorInfo
}

// Apply folds one event of the job's stream.
func (v *Verification) Apply(e Envelope) error {
	switch e.Type {
	case VerificationRequested:
		if err := e.Decode(&v.VerificationRequestedData); err != nil {
			return err
		}
		v.Status = JobPending
	case VerificationStarted:
		var d VerificationStartedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		v.Status, v.StartedAt = JobStarting, d.StartedAt
	case VerificationRunning:
		v.Status = JobRunning
	case VerificationStillRunning:
		// The oracle runs on: only the version moves, which names the delivery that waits next.
	case VerificationCompleted:
		var d VerificationCompletedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		v.Status, v.CompletedAt, v.Result = JobCompleted, d.CompletedAt, &d.Result
	case VerificationFailed:
		var d VerificationFailedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		v.Status, v.CompletedAt, v.Error = JobError, d.FailedAt, &d.Error
	case VerificationCancelled:
		var d VerificationCancelledData
		if err := e.Decode(&d); err != nil {
			return err
		}
		v.Status, v.CompletedAt = JobCancelled, d.CancelledAt
		v.Error = &ErrorInfo{Code: CodeCancelled, Message: d.Reason}
	}
	v.Version = e.Version
	return nil
}

// FoldVerification folds a job's events; ok is false when the stream is empty.
func FoldVerification(evs []Envelope) (v Verification, ok bool, err error) {
	for _, e := range evs {
		if err := v.Apply(e); err != nil {
			return v, false, err
		}
	}
	return v, v.Version > 0, nil
}

// Done reports whether the job has ended (completed, error or cancelled).
func (v Verification) Done() bool {
	return v.Status == JobCompleted || v.Status == JobError || v.Status == JobCancelled
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// RequestVerification decides a new job. The caller has checked that the session is the
// caller's and can take work.
func RequestVerification(eventID string, d VerificationRequestedData) (Envelope, error) {
	d.CreatedAt = stamp(d.CreatedAt)
	return New(eventID, d.UserID, VerificationRequested, d.CreatedAt, d)
}

// Start decides the verifier's claim of a pending job; for any other job it decides nothing.
func (v Verification) Start(eventID string, at time.Time) ([]Envelope, error) {
	if v.Status != JobPending {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationStarted, at, VerificationStartedData{StartedAt: stamp(at)})
	return []Envelope{e}, err
}

// Run decides that the verifier command was sent to the sandbox.
func (v Verification) Run(eventID string, at time.Time) ([]Envelope, error) {
	if v.Status != JobStarting {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationRunning, at, VerificationRunningData{RunningAt: stamp(at)})
	return []Envelope{e}, err
}

// StillRunning decides the hand-over of the wait for a running job to the next delivery, when
// the stream still stands at version read (the caller's view); otherwise nothing.
func (v Verification) StillRunning(eventID string, at time.Time, read int64) ([]Envelope, error) {
	if v.Status != JobRunning || v.Version != read {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationStillRunning, at, StillRunningData{At: stamp(at)})
	return []Envelope{e}, err
}

// StillRunningData is the data of VerificationStillRunning.
type StillRunningData struct {
	At time.Time `json:"at"` // when the delivery that recorded it stopped waiting
}

// Complete decides the graded result of a running job; a job that has ended (cancelled while
// its verifier ran) keeps its end.
func (v Verification) Complete(eventID string, at time.Time, r VerificationResult) ([]Envelope, error) {
	if v.Status != JobRunning {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationCompleted, at, VerificationCompletedData{CompletedAt: stamp(at), Result: r})
	return []Envelope{e}, err
}

// Fail decides that the job could not produce a result. Only a job that has not ended fails.
func (v Verification) Fail(eventID string, at time.Time, code, message string) ([]Envelope, error) {
	if v.Version == 0 || v.Done() {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationFailed, at, VerificationFailedData{FailedAt: stamp(at), Error: ErrorInfo{Code: code, Message: message}})
	return []Envelope{e}, err
}

// Cancel decides that the job will not end on its own: its session ended first.
func (v Verification) Cancel(eventID string, at time.Time, reason string) ([]Envelope, error) {
	if v.Version == 0 || v.Done() {
		return nil, nil
	}
	e, err := New(eventID, v.UserID, VerificationCancelled, at, VerificationCancelledData{CancelledAt: stamp(at), Reason: reason})
	return []Envelope{e}, err
}
