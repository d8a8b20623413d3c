package functions

import (
	"context"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

type stringReplaceRequest struct {
	FilePath     string `json:"file_path" required:"true"`
	StrToReplace string `json:"str_to_replace" required:"true"`
	StrToInsert  string `json:"str_to_insert" required:"true"`
}

// editTimeout bounds a synchronous edit or upload in the sandbox.
const editTimeout = 60 * time.Second

// StringReplace answers POST /sessions/{session_id}/str_replace: it replaces the one occurrence
// of str_to_replace in the file (relative paths resolve against the sample's work directory) and
// answers at once; no occurrence or several is success=false with the reason. It is also recorded
// as an interaction.
func StringReplace(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req stringReplaceRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	if req.FilePath == "" {
		return httpapi.Invalid("string_too_short", "String should have at least 1 character", "body", "file_path")
	}
	if req.StrToReplace == "" {
		return httpapi.Invalid("string_too_short", "String should have at least 1 character", "body", "str_to_replace")
	}
	s, err := callerSession(a, r, r.PathValue("session_id"))
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	if err := runnable(s, now); err != nil {
		return err
	}
	start := time.Now()
	var res events.InteractionResult
	c, err := a.SandboxClient(s)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), editTimeout)
		var ok bool
		var msg string
		ok, msg, err = c.StrReplace(ctx, req.FilePath, req.StrToReplace, req.StrToInsert)
		cancel()
		res = events.InteractionResult{Success: ok, Message: msg, ExitCode: exitCode(ok), ExecutionTimeSeconds: time.Since(start).Seconds()}
	}
	if err != nil {
		res = infraResult(err, time.Since(start))
	}
	id := ids.Prefixed("int")
	d := events.StringReplacedData{
		InteractionHeader: events.InteractionHeader{InteractionID: id, SessionID: s.SessionID, UserID: s.UserID, CreatedAt: now},
		FilePath:          req.FilePath, StrToReplace: req.StrToReplace, StrToInsert: req.StrToInsert, InteractionResult: res,
	}
	if err := storeLargeEdit(r.Context(), a, &d); err != nil {
		return err
	}
	e, err := events.RecordStringReplace(ids.New(), d)
	if err != nil {
		return err
	}
	if _, err := app.Create(r.Context(), a, events.InteractionStream(id), []events.Envelope{e}); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"success": res.Success, "message": res.Message, "interaction_id": id})
	return nil
}

// exitCode is the exit code recorded for an edit that did or did not happen.
func exitCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}
