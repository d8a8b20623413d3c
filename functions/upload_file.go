package functions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

type uploadRequest struct {
	FilePath       string `json:"file_path" required:"true"`
	ContentBase64  string `json:"content_base64" required:"true"`
	MakeExecutable bool   `json:"make_executable"`
}

// MaxUploadBytes is the largest file an upload takes, decoded.
const MaxUploadBytes = 10 << 20

// uploadBodyLimit lets through the base64 of MaxUploadBytes (4 characters per 3 bytes) and the
// rest of the JSON, so that the decoded size decides the 413.
const uploadBodyLimit = MaxUploadBytes/3*4 + 64<<10

// UploadFile answers POST /sessions/{session_id}/upload: it writes the decoded content at
// file_path (relative paths resolve against the sample's work directory; parents are created),
// optionally executable, and answers at once. It is also recorded as an interaction (without the
// content).
func UploadFile(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req uploadRequest
	if err := httpapi.Decode(r, uploadBodyLimit, &req); err != nil {
		return err
	}
	if req.FilePath == "" {
		return httpapi.Invalid("string_too_short", "String should have at least 1 character", "body", "file_path")
	}
	content, err := decodeBase64(req.ContentBase64)
	if err != nil {
		return httpapi.Invalid("value_error", "content_base64 is not valid base64: "+err.Error(), "body", "content_base64")
	}
	if len(content) > MaxUploadBytes {
		return httpapi.Errorf(http.StatusRequestEntityTooLarge, "file of %d bytes is over the upload limit of %d bytes", len(content), MaxUploadBytes)
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
	var size int64
	c, err := a.SandboxClient(s)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), editTimeout)
		size, err = c.Upload(ctx, req.FilePath, content, req.MakeExecutable)
		cancel()
		took := time.Since(start).Seconds()
		switch {
		case err == nil:
			res = events.InteractionResult{Success: true, Message: fmt.Sprintf("wrote %d bytes to %s", size, req.FilePath), ExecutionTimeSeconds: took}
		case errors.Is(err, sandbox.ErrRejected):
			res = events.InteractionResult{ExitCode: 1, Message: err.Error(), ExecutionTimeSeconds: took}
			err = nil
		}
	}
	if err != nil {
		res = infraResult(err, time.Since(start))
	}
	id := ids.Prefixed("int")
	e, err := events.RecordFileUpload(ids.New(), events.FileUploadedData{
		InteractionHeader: events.InteractionHeader{InteractionID: id, SessionID: s.SessionID, UserID: s.UserID, CreatedAt: now},
		FilePath:          req.FilePath, SizeBytes: size, MakeExecutable: req.MakeExecutable, InteractionResult: res,
	})
	if err != nil {
		return err
	}
	if _, err := app.Create(r.Context(), a, events.InteractionStream(id), []events.Envelope{e}); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"success": res.Success, "message": res.Message, "file_path": req.FilePath, "size_bytes": size, "interaction_id": id,
	})
	return nil
}

// decodeBase64 takes standard base64, padded or not; whitespace (line breaks of MIME encoders)
// is ignored.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if strings.HasSuffix(s, "=") || len(s)%4 == 0 {
		return base64.StdEncoding.Strict().DecodeString(s)
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}
