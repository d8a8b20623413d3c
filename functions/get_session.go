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

// sessionView is the spec's Session. The read model's internal fields (the sandbox's address and
// secret) are never served.
type sessionView struct {
	SessionID       string                     `json:"session_id"`
	UserID          string                     `json:"user_id"`
	Dataset         string                     `json:"dataset"`
	SampleID        string                     `json:"sample_id"`
	Status          string                     `json:"status"`
	RequestedAt     time.Time                  `json:"requested_at"`
	CreatedAt       *time.Time                 `json:"created_at"`
	ExpiresAt       time.Time                  `json:"expires_at"`
	DurationSeconds *float64                   `json:"duration_seconds"`
	ContainerInfo   *projections.ContainerInfo `json:"container_info"`
	Error           *events.ErrorInfo          `json:"error"`
}

// viewSession renders a session document; a running session's duration runs to now.
func viewSession(d projections.SessionDoc, now time.Time) sessionView {
	v := sessionView{
		SessionID: d.SessionID, UserID: d.UserID, Dataset: d.Dataset, SampleID: d.SampleID,
		Status: d.Status, RequestedAt: d.RequestedAt, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt,
		DurationSeconds: d.DurationSeconds, ContainerInfo: d.ContainerInfo, Error: d.Error,
	}
	if d.Status == events.StatusReady && d.CreatedAt != nil {
		secs := max(0, now.Sub(*d.CreatedAt).Seconds())
		v.DurationSeconds = &secs
	}
	return v
}

// callerSessionDoc reads the caller's session from the read model; another user's is a 404.
func callerSessionDoc(a *app.App, r *http.Request, id string) (projections.SessionDoc, error) {
	d, err := projections.Get[projections.SessionDoc](r.Context(), a.Docs, projections.SessionCollection, id)
	if errors.Is(err, projections.ErrNotFound) || (err == nil && d.UserID != app.Caller(r.Context()).UserID) {
		return d, httpapi.NotFound("session")
	}
	return d, err
}

// GetSession answers GET /sessions/{session_id}.
func GetSession(a *app.App, w http.ResponseWriter, r *http.Request) error {
	d, err := callerSessionDoc(a, r, r.PathValue("session_id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, viewSession(d, a.Clock.Now()))
	return nil
}
