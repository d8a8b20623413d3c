package functions

import (
	"errors"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// verificationJobView is the spec's VerificationJob.
type verificationJobView struct {
	JobID         string                     `json:"job_id"`
	SampleID      string                     `json:"sample_id"`
	SessionID     string                     `json:"session_id"`
	Status        string                     `json:"status"`
	CreatedAt     time.Time                  `json:"created_at"`
	StartedAt     *time.Time                 `json:"started_at"`
	CompletedAt   *time.Time                 `json:"completed_at"`
	Result        *events.VerificationResult `json:"result"`
	Error         *events.ErrorInfo          `json:"error"`
	ContainerInfo *projections.ContainerInfo `json:"container_info"`
}

// GetVerificationJob answers GET /sessions/{session_id}/verify/{job_id}. A job of another
// session, or of another user, is a 404 like an unknown one.
func GetVerificationJob(a *app.App, w http.ResponseWriter, r *http.Request) error {
	sid, id := r.PathValue("session_id"), r.PathValue("job_id")
	d, err := projections.Get[projections.VerificationDoc](r.Context(), a.Docs, projections.VerificationCollection, id)
	if errors.Is(err, projections.ErrNotFound) || (err == nil && (d.SessionID != sid || d.UserID != app.Caller(r.Context()).UserID)) {
		return httpapi.NotFound("verification job")
	}
	if err != nil {
		return err
	}
	// A large result is in the blob store: the client gets it whole.
	if d.Result, err = resolveReport(r.Context(), a, d.JobID, d.Result); err != nil {
		return err
	}
	v := verificationJobView{
		JobID: d.JobID, SampleID: d.SampleID, SessionID: d.SessionID, Status: d.Status, CreatedAt: d.CreatedAt,
		StartedAt: d.StartedAt, CompletedAt: d.CompletedAt, Result: d.Result, Error: d.Error,
	}
	// The job ran in its session's container: show it as the session does.
	if s, err := projections.Get[projections.SessionDoc](r.Context(), a.Docs, projections.SessionCollection, sid); err == nil {
		v.ContainerInfo = s.ContainerInfo
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
	return nil
}
