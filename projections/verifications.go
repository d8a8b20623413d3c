package projections

import (
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
)

// VerificationCollection holds one VerificationDoc per verification job, keyed by job id.
const VerificationCollection = "verifications"

// VerificationDoc is the verification job read model: the spec's VerificationJob fields, who
// owns the job, and the stream version applied.
type VerificationDoc struct {
	JobID       string                     `json:"job_id"`
	SessionID   string                     `json:"session_id"`
	UserID      string                     `json:"user_id"`
	Dataset     string                     `json:"dataset"`
	SampleID    string                     `json:"sample_id"`
	Status      string                     `json:"status"`
	CreatedAt   time.Time                  `json:"created_at"`
	StartedAt   *time.Time                 `json:"started_at"`
	CompletedAt *time.Time                 `json:"completed_at"`
	Result      *events.VerificationResult `json:"result"`
	Error       *events.ErrorInfo          `json:"error"`

	Version int64 `json:"version"`
}

// StreamVersion is the version of the job's stream the document has applied.
func (d VerificationDoc) StreamVersion() int64 { return d.Version }

// ApplyVerification folds one event of a job's stream into its document.
func ApplyVerification(d *VerificationDoc, e events.Envelope) error {
	switch e.Type {
	case events.VerificationRequested:
		var r events.VerificationRequestedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.JobID, d.SessionID, d.UserID, d.Dataset, d.SampleID = r.JobID, r.SessionID, r.UserID, r.Dataset, r.SampleID
		d.Status, d.CreatedAt = events.JobPending, r.CreatedAt
	case events.VerificationStarted:
		var r events.VerificationStartedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.StartedAt = events.JobStarting, &r.StartedAt
	case events.VerificationRunning:
		d.Status = events.JobRunning
	case events.VerificationStillRunning: // the oracle runs on; nothing a reader sees changes
	case events.VerificationCompleted:
		var r events.VerificationCompletedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.CompletedAt, d.Result = events.JobCompleted, &r.CompletedAt, &r.Result
	case events.VerificationFailed:
		var r events.VerificationFailedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.CompletedAt, d.Error = events.JobError, &r.FailedAt, &r.Error
	case events.VerificationCancelled:
		var r events.VerificationCancelledData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.CompletedAt = events.JobCancelled, &r.CancelledAt
		d.Error = &events.ErrorInfo{Code: events.CodeCancelled, Message: r.Reason}
	default:
		return fmt.Errorf("verification projector: unknown event type %q", e.Type)
	}
	d.Version = e.Version
	return nil
}

// IsVerificationEvent reports whether e belongs to a verification job's stream.
func IsVerificationEvent(e events.Envelope) bool {
	switch e.Type {
	case events.VerificationRequested, events.VerificationStarted, events.VerificationRunning, events.VerificationStillRunning,
		events.VerificationCompleted, events.VerificationFailed, events.VerificationCancelled:
		return true
	}
	return false
}
