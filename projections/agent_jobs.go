package projections

import (
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
)

// AgentJobCollection holds one AgentJobDoc per agent job, keyed by job id.
const AgentJobCollection = "agent_jobs"

// AgentJobDoc is the agent-job read model: what GET /agent-jobs and GET /agent-jobs/{job_id}
// answer, who owns the job, and the stream version applied. Listings ask for user_id and
// listed, newest first (created_us): on Firestore a composite index (user_id, listed,
// created_us desc).
type AgentJobDoc struct {
	JobID           string          `json:"job_id"`
	UserID          string          `json:"user_id"`
	Repo            string          `json:"repo"`
	Ref             string          `json:"ref"`
	Commit          string          `json:"commit"`
	AgentID         string          `json:"agent_id"`
	Status          string          `json:"status"`
	Listed          bool            `json:"listed"` // accepted (charged): a rejected request is nobody's job
	ProgressPct     int             `json:"progress_pct"`
	ProgressStage   string          `json:"progress_stage"`
	ResultRef       *events.BlobRef `json:"result_ref,omitempty"`
	ErrorCode       string          `json:"error_code,omitempty"`
	ErrorMessage    string          `json:"error_message,omitempty"`
	CostCents       int64           `json:"cost_cents"`
	RefundCents     int64           `json:"refund_cents"`
	CreatedAt       time.Time       `json:"created_at"`
	CreatedMicros   int64           `json:"created_us"` // the listing's sort key
	StartedAt       *time.Time      `json:"started_at"`
	CompletedAt     *time.Time      `json:"completed_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	TimeoutSeconds  int64           `json:"timeout_seconds"`
	ResultAvailable bool            `json:"result_available"`

	Version int64 `json:"version"`
}

// StreamVersion is the version of the job's stream the document has applied.
func (d AgentJobDoc) StreamVersion() int64 { return d.Version }

// ApplyAgentJob folds one event of a job's stream into its document.
func ApplyAgentJob(d *AgentJobDoc, e events.Envelope) error {
	switch e.Type {
	case events.AgentJobRequested:
		var r events.AgentJobRequestedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.JobID, d.UserID, d.Repo, d.Ref, d.AgentID = r.JobID, r.UserID, r.Repo, r.Ref, r.AgentID
		d.Commit, d.CostCents, d.TimeoutSeconds = r.Source.Commit, r.CostCents, r.TimeoutSeconds
		d.Status, d.CreatedAt, d.CreatedMicros = events.AgentJobStatusRequested, r.CreatedAt, r.CreatedAt.UnixMicro()
	case events.AgentJobAccepted:
		var r events.AgentJobAcceptedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.Listed, d.CostCents = events.AgentJobStatusQueued, true, r.ChargedCents
	case events.AgentJobRejected:
		var r events.AgentJobRejectedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.Listed, d.ErrorMessage = events.AgentJobStatusRejected, false, r.Reason
	case events.AgentJobStarted:
		var r events.AgentJobStartedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.StartedAt = events.AgentJobStatusRunning, &r.StartedAt
	case events.AgentJobProgress:
		var r events.AgentJobProgressData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.ProgressPct, d.ProgressStage = r.Pct, r.Stage
	case events.AgentJobCompleted:
		var r events.AgentJobCompletedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.CompletedAt, d.ResultRef, d.ResultAvailable = events.AgentJobStatusCompleted, &r.CompletedAt, &r.ResultRef, true
		d.ProgressPct, d.ProgressStage = 100, "completed"
		if r.Commit != "" {
			d.Commit = r.Commit
		}
	case events.AgentJobFailed:
		var r events.AgentJobFailedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.Status, d.CompletedAt, d.RefundCents = events.AgentJobStatusError, &r.FailedAt, r.RefundCents
		d.ErrorCode, d.ErrorMessage = r.Error.Code, r.Error.Message
	default:
		return fmt.Errorf("agent-job projector: unknown event type %q", e.Type)
	}
	d.UpdatedAt = e.OccurredAt
	d.Version = e.Version
	return nil
}

// IsAgentJobEvent reports whether e belongs to an agent job's stream.
func IsAgentJobEvent(e events.Envelope) bool {
	switch e.Type {
	case events.AgentJobRequested, events.AgentJobAccepted, events.AgentJobRejected, events.AgentJobStarted,
		events.AgentJobProgress, events.AgentJobCompleted, events.AgentJobFailed:
		return true
	}
	return false
}
