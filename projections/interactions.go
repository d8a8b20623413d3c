package projections

import (
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
)

// InteractionCollection holds one InteractionDoc per interaction, keyed by interaction id.
const InteractionCollection = "interactions"

// InteractionDoc is the interaction read model: the union of the spec's three interaction shapes
// (InteractionType tells which fields apply), its progress and the stream version applied.
type InteractionDoc struct {
	InteractionID   string     `json:"interaction_id"`
	SessionID       string     `json:"session_id"`
	UserID          string     `json:"user_id"`
	InteractionType string     `json:"interaction_type"` // exec_command | string_replace | file_upload
	Status          string     `json:"status"`           // pending | processing | completed
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"` // when the executor claimed an exec

	ExitCode             *int     `json:"exit_code"`
	Stdout               *string  `json:"stdout"`
	Stderr               *string  `json:"stderr"`
	ExecutionTimeSeconds *float64 `json:"execution_time_seconds"`
	Success              *bool    `json:"success"`
	Message              *string  `json:"message"`
	// StdoutRef and StderrRef: the whole stream is in the blob store, Stdout or Stderr holds
	// its head; readers resolve them (functions/large_output.go).
	StdoutRef *events.BlobRef `json:"stdout_ref,omitempty"`
	StderrRef *events.BlobRef `json:"stderr_ref,omitempty"`
	// exec_command: what it used, when its sandbox measured it
	Usage *events.Usage `json:"usage,omitempty"`

	// exec_command
	Command        string `json:"command,omitempty"`
	CommandTimeout int    `json:"command_timeout,omitempty"`
	// string_replace and file_upload
	FilePath     string `json:"file_path,omitempty"`
	StrToReplace string `json:"str_to_replace,omitempty"`
	StrToInsert  string `json:"str_to_insert,omitempty"`
	// StrToReplaceRef and StrToInsertRef: as StdoutRef, for a string_replace's strings.
	StrToReplaceRef *events.BlobRef `json:"str_to_replace_ref,omitempty"`
	StrToInsertRef  *events.BlobRef `json:"str_to_insert_ref,omitempty"`
	SizeBytes       *int64          `json:"size_bytes,omitempty"`
	MakeExec        bool            `json:"make_executable,omitempty"`

	Version int64 `json:"version"`
}

func (d *InteractionDoc) result(r events.InteractionResult) {
	d.Status = events.InteractionCompleted
	d.ExitCode, d.Stdout, d.Stderr = &r.ExitCode, &r.Stdout, &r.Stderr
	d.ExecutionTimeSeconds, d.Success, d.Message = &r.ExecutionTimeSeconds, &r.Success, &r.Message
	d.Usage = r.Usage
	d.StdoutRef, d.StderrRef = r.StdoutRef, r.StderrRef
}

func (d *InteractionDoc) header(h events.InteractionHeader, kind string) {
	d.InteractionID, d.SessionID, d.UserID, d.CreatedAt, d.InteractionType = h.InteractionID, h.SessionID, h.UserID, h.CreatedAt, kind
}

// ApplyInteraction folds one event of an interaction's stream into its document.
func ApplyInteraction(d *InteractionDoc, e events.Envelope) error {
	switch e.Type {
	case events.ExecRequested:
		var r events.ExecRequestedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.header(r.InteractionHeader, events.InteractionExec)
		d.Status, d.Command, d.CommandTimeout = events.InteractionPending, r.Command, r.CommandTimeout
	case events.ExecStarted:
		var s events.ExecStartedData
		if err := e.Decode(&s); err != nil {
			return err
		}
		d.Status, d.StartedAt = events.InteractionProcessing, &s.StartedAt
	case events.ExecCompleted:
		var r events.ExecCompletedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.result(r.InteractionResult)
	case events.ExecRunning: // the command runs on; nothing a reader sees changes
	case events.StringReplaced:
		var r events.StringReplacedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.header(r.InteractionHeader, events.InteractionEdit)
		d.FilePath, d.StrToReplace, d.StrToInsert = r.FilePath, r.StrToReplace, r.StrToInsert
		d.StrToReplaceRef, d.StrToInsertRef = r.StrToReplaceRef, r.StrToInsertRef
		d.result(r.InteractionResult)
	case events.FileUploaded:
		var r events.FileUploadedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		d.header(r.InteractionHeader, events.InteractionUpload)
		size := r.SizeBytes
		d.FilePath, d.SizeBytes, d.MakeExec = r.FilePath, &size, r.MakeExecutable
		d.result(r.InteractionResult)
	default:
		return fmt.Errorf("interaction projector: unknown event type %q", e.Type)
	}
	d.Version = e.Version
	return nil
}

// IsInteractionEvent reports whether e belongs to an interaction stream.
func IsInteractionEvent(e events.Envelope) bool {
	switch e.Type {
	case events.ExecRequested, events.ExecStarted, events.ExecRunning, events.ExecCompleted, events.StringReplaced, events.FileUploaded:
		return true
	}
	return false
}
