package functions

import (
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

// verifyStartResponse is the spec's VerifyStartResponse.
type verifyStartResponse struct {
	JobID     string    `json:"job_id"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
}

// StartVerification answers POST /sessions/{session_id}/verify: it records the job and answers
// 202 with its id; the verifier runs the sample's oracle in the session's sandbox and records the
// graded result. The operation takes no body.
func StartVerification(a *app.App, w http.ResponseWriter, r *http.Request) error {
	s, err := callerSession(a, r, r.PathValue("session_id"))
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	if err := runnable(s, now); err != nil {
		return err
	}
	id := ids.Prefixed("ver")
	e, err := events.RequestVerification(ids.New(), events.VerificationRequestedData{
		JobID: id, SessionID: s.SessionID, UserID: s.UserID, Dataset: s.Dataset, SampleID: s.SampleID,
		SampleVersion: s.SampleVersion, CreatedAt: now, TimeoutSeconds: int(a.Config.VerifyTimeout / time.Second),
	})
	if err != nil {
		return err
	}
	stored, err := app.Create(r.Context(), a, events.VerificationStream(id), []events.Envelope{e})
	if err != nil {
		return err
	}
	var d events.VerificationRequestedData
	if err := stored[0].Decode(&d); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, verifyStartResponse{JobID: id, Status: events.JobPending, StartedAt: d.CreatedAt})
	return nil
}
