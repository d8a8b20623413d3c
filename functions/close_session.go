package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
)

// CloseSession answers DELETE /sessions/{session_id}: it ends the session (billing it from ready
// to now) and stops its sandbox. Closing an ended session changes nothing and answers the same
// duration, so a retried DELETE never bills twice.
func CloseSession(a *app.App, w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("session_id")
	before, err := callerSession(a, r, id)
	if err != nil {
		return err
	}
	s, err := endSession(r.Context(), a, id, events.EndClosed, a.Clock.Now())
	if err != nil {
		return err
	}
	msg := "Session closed successfully"
	if before.Done() {
		msg = "Session had already ended (status " + s.Status + ")"
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"message": msg, "duration_seconds": s.DurationSeconds(a.Clock.Now())})
	return nil
}
