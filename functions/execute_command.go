package functions

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

type execRequest struct {
	Command        string `json:"command" required:"true"`
	CommandTimeout *int   `json:"command_timeout"`
}

// defaultCommandTimeout is the spec's default command_timeout, in seconds.
const defaultCommandTimeout = 300

// ExecuteCommand answers POST /sessions/{session_id}/exec: it records the request and answers
// 202 with the interaction id; the executor runs the command and records its result.
func ExecuteCommand(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req execRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Command) == "" {
		return httpapi.Invalid("string_too_short", "command must not be empty", "body", "command")
	}
	timeout := defaultCommandTimeout
	if req.CommandTimeout != nil {
		timeout = *req.CommandTimeout
	}
	if timeout < 1 {
		return httpapi.Invalid("greater_than_equal", "Input should be greater than or equal to 1", "body", "command_timeout")
	}
	if int64(timeout) > a.Config.MaxCommandTimeout {
		return httpapi.Invalid("less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", a.Config.MaxCommandTimeout), "body", "command_timeout")
	}
	s, err := callerSession(a, r, r.PathValue("session_id"))
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	if err := runnable(s, now); err != nil {
		return err
	}
	id := ids.Prefixed("int")
	e, err := events.RequestExec(ids.New(), events.ExecRequestedData{
		InteractionHeader: events.InteractionHeader{InteractionID: id, SessionID: s.SessionID, UserID: s.UserID, CreatedAt: now},
		Command:           req.Command, CommandTimeout: timeout,
	})
	if err != nil {
		return httpapi.Invalid("value_error", err.Error(), "body", "command_timeout")
	}
	// Appended without waiting for the projection: GET interaction reads the stream itself until
	// the bus has projected it, so the caller still reads its own write, and the command starts
	// sooner.
	if _, err := app.Create(r.Context(), a, events.InteractionStream(id), []events.Envelope{e}, app.NoInline()); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"interaction_id": id, "status": events.InteractionPending})
	return nil
}
