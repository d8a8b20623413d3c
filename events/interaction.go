package events

// The interaction aggregate: one stream per interaction, "interaction-<id>", so that a busy
// session never contends on one stream. An exec is requested (pending), claimed by the executor
// (processing) and completed with its result; a string replacement or an upload happens
// synchronously and is recorded by one event that carries its result.

import (
	"errors"
	"time"
)

// InteractionStream is the stream of an interaction.
func InteractionStream(id string) string { return "interaction-" + id }

// Event types of the interaction aggregate.
const (
	ExecRequested = "interaction.exec_requested"
	ExecStarted   = "interaction.exec_started"
	ExecCompleted = "interaction.exec_completed"
	// ExecRunning: a delivery of the executor waited its share of a long command, which runs on
	// in the sandbox, and hands the wait to the next delivery (this event's).
	ExecRunning       = "interaction.exec_running"
	StringReplaced    = "interaction.string_replaced"
	FileUploaded      = "interaction.file_uploaded"
	InteractionExec   = "exec_command" // interaction kinds, as the spec's interaction_type
	InteractionEdit   = "string_replace"
	InteractionUpload = "file_upload"
)

// Interaction statuses, as ExecStartResponse names them.
const (
	InteractionPending    = "pending"
	InteractionProcessing = "processing"
	InteractionCompleted  = "completed"
)

// ErrBadCommandTimeout: a command timeout that is not a positive number of seconds.
var ErrBadCommandTimeout = errors.New("command_timeout must be at least 1 second")

// InteractionHeader is what every interaction starts with.
type InteractionHeader struct {
	InteractionID string    `json:"interaction_id"`
	SessionID     string    `json:"session_id"`
	UserID        string    `json:"user_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// InteractionResult is the outcome of any interaction, in the spec's fields.
type InteractionResult struct {
	ExitCode             int     `json:"exit_code"`
	Stdout               string  `json:"stdout"`
	Stderr               string  `json:"stderr"`
	ExecutionTimeSeconds float64 `json:"execution_time_seconds"`
	Success              bool    `json:"success"`
	Message              string  `json:"message"`
	TimedOut             bool    `json:"timed_out,omitempty"`
	// StdoutRef and StderrRef, when set, hold the whole stream in the blob store: Stdout or
	// Stderr is then only its head, for a reader of the log (never for events written before
	// output was stored so).
	StdoutRef *BlobRef `json:"stdout_ref,omitempty"`
	StderrRef *BlobRef `json:"stderr_ref,omitempty"`
	// Usage is what a command used, when its sandbox measured it (never for events written
	// before it did).
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is what one command used of its sandbox: the largest resident set of any one of its
// processes (the command and the descendants it waited for) and their CPU time, user and system.
type Usage struct {
	PeakMemoryBytes int64   `json:"peak_memory_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
}

// ExecRequestedData is the data of ExecRequested.
type ExecRequestedData struct {
	InteractionHeader
	Command        string `json:"command"`
	CommandTimeout int    `json:"command_timeout"` // seconds
}

// ExecStartedData is the data of ExecStarted: the executor's claim, so a duplicate delivery of
// the request never runs the command twice.
type ExecStartedData struct {
	StartedAt time.Time `json:"started_at"`
}

// ExecRunningData is the data of ExecRunning.
type ExecRunningData struct {
	At time.Time `json:"at"` // when the delivery that recorded it stopped waiting
}

// ExecCompletedData is the data of ExecCompleted.
type ExecCompletedData struct {
	CompletedAt time.Time `json:"completed_at"`
	InteractionResult
}

// StringReplacedData is the data of StringReplaced.
type StringReplacedData struct {
	InteractionHeader
	FilePath     string `json:"file_path"`
	StrToReplace string `json:"str_to_replace"`
	StrToInsert  string `json:"str_to_insert"`
	// StrToReplaceRef and StrToInsertRef: the whole string is in the blob store (a request may
	// carry a megabyte of them), the field above holds its head.
	StrToReplaceRef *BlobRef `json:"str_to_replace_ref,omitempty"`
	StrToInsertRef  *BlobRef `json:"str_to_insert_ref,omitempty"`
	InteractionResult
}

// FileUploadedData is the data of FileUploaded. The content itself is not kept: events stay
// small, and the file lives in the sandbox.
type FileUploadedData struct {
	InteractionHeader
	FilePath       string `json:"file_path"`
	SizeBytes      int64  `json:"size_bytes"`
	MakeExecutable bool   `json:"make_executable"`
	InteractionResult
}

// Interaction is the state of one interaction, folded from its stream.
type Interaction struct {
	Version   int64
	Kind      string
	Status    string
	StartedAt time.Time // when the executor claimed an exec
	InteractionHeader
	Exec   *ExecRequestedData
	Edit   *StringReplacedData
	Upload *FileUploadedData
	Result *InteractionResult
}

// Apply folds one event of the interaction's stream.
func (it *Interaction) Apply(e Envelope) error {
	switch e.Type {
	case ExecRequested:
		var d ExecRequestedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		it.Kind, it.Status, it.InteractionHeader, it.Exec = InteractionExec, InteractionPending, d.InteractionHeader, &d
	case ExecStarted:
		var d ExecStartedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		it.Status, it.StartedAt = InteractionProcessing, d.StartedAt
	case ExecCompleted:
		var d ExecCompletedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		it.Status, it.Result = InteractionCompleted, &d.InteractionResult
	case ExecRunning:
		// The command runs on: only the version moves, which names the delivery that waits next.
	case StringReplaced:
		var d StringReplacedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		it.Kind, it.Status, it.InteractionHeader, it.Edit, it.Result = InteractionEdit, InteractionCompleted, d.InteractionHeader, &d, &d.InteractionResult
	case FileUploaded:
		var d FileUploadedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		it.Kind, it.Status, it.InteractionHeader, it.Upload, it.Result = InteractionUpload, InteractionCompleted, d.InteractionHeader, &d, &d.InteractionResult
	}
	it.Version = e.Version
	return nil
}

// FoldInteraction folds an interaction's events; ok is false when the stream is empty.
func FoldInteraction(evs []Envelope) (it Interaction, ok bool, err error) {
	for _, e := range evs {
		if err := it.Apply(e); err != nil {
			return it, false, err
		}
	}
	return it, it.Version > 0, nil
}

// RequestExec decides a command to run in a ready session (the caller checked the session).
func RequestExec(eventID string, d ExecRequestedData) (Envelope, error) {
	if d.CommandTimeout < 1 {
		return Envelope{}, ErrBadCommandTimeout
	}
	d.CreatedAt = d.CreatedAt.UTC().Truncate(time.Microsecond)
	return New(eventID, d.UserID, ExecRequested, d.CreatedAt, d)
}

// Start decides the executor's claim on a pending exec; anything else decides nothing (the
// command is running or ran already).
func (it Interaction) Start(eventID string, at time.Time) ([]Envelope, error) {
	if it.Kind != InteractionExec || it.Status != InteractionPending {
		return nil, nil
	}
	e, err := New(eventID, it.UserID, ExecStarted, at, ExecStartedData{StartedAt: at.UTC().Truncate(time.Microsecond)})
	return []Envelope{e}, err
}

// StillRunning decides the hand-over of the wait for a claimed exec to the next delivery, when
// the stream still stands at version read (the caller's view): a stream that moved on (the
// result is in, or another delivery handed over first) decides nothing.
func (it Interaction) StillRunning(eventID string, at time.Time, read int64) ([]Envelope, error) {
	if it.Kind != InteractionExec || it.Status != InteractionProcessing || it.Version != read {
		return nil, nil
	}
	e, err := New(eventID, it.UserID, ExecRunning, at, ExecRunningData{At: at.UTC().Truncate(time.Microsecond)})
	return []Envelope{e}, err
}

// Complete decides the result of a claimed exec; a completed one decides nothing.
func (it Interaction) Complete(eventID string, at time.Time, r InteractionResult) ([]Envelope, error) {
	if it.Kind != InteractionExec || it.Status == InteractionCompleted {
		return nil, nil
	}
	e, err := New(eventID, it.UserID, ExecCompleted, at, ExecCompletedData{CompletedAt: at.UTC().Truncate(time.Microsecond), InteractionResult: r})
	return []Envelope{e}, err
}

// RecordStringReplace decides the record of a string replacement that already happened.
func RecordStringReplace(eventID string, d StringReplacedData) (Envelope, error) {
	d.CreatedAt = d.CreatedAt.UTC().Truncate(time.Microsecond)
	return New(eventID, d.UserID, StringReplaced, d.CreatedAt, d)
}

// RecordFileUpload decides the record of an upload that already happened.
func RecordFileUpload(eventID string, d FileUploadedData) (Envelope, error) {
	d.CreatedAt = d.CreatedAt.UTC().Truncate(time.Microsecond)
	return New(eventID, d.UserID, FileUploaded, d.CreatedAt, d)
}
