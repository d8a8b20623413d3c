package projections

import (
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
)

// SessionCollection holds one SessionDoc per session, keyed by session id.
const SessionCollection = "sessions"

// ContainerInfo is the spec's container information of a session.
type ContainerInfo struct {
	ContainerName string    `json:"container_name"`
	ServiceURL    string    `json:"service_url"`
	SampleID      string    `json:"sample_id"`
	Status        string    `json:"status"` // running | stopped
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	Location      string    `json:"location"`
}

// SessionDoc is the session read model: the spec's Session plus what the edge needs to find and
// reach it (Active for listings and limits, Sandbox to talk to its agent) and the stream version
// applied so far, which makes the projector idempotent.
type SessionDoc struct {
	SessionID       string            `json:"session_id"`
	UserID          string            `json:"user_id"`
	Dataset         string            `json:"dataset"`
	SampleID        string            `json:"sample_id"`
	SampleVersion   int               `json:"sample_version"`
	Status          string            `json:"status"`
	RequestedAt     time.Time         `json:"requested_at"`
	CreatedAt       *time.Time        `json:"created_at"`
	ExpiresAt       time.Time         `json:"expires_at"`
	EndedAt         *time.Time        `json:"ended_at,omitempty"`
	DurationSeconds *float64          `json:"duration_seconds"`
	ContainerInfo   *ContainerInfo    `json:"container_info"`
	Error           *events.ErrorInfo `json:"error"`

	RequestedUS int64           `json:"requested_us"`      // requested_at in unix microseconds: the listing's order
	Active      bool            `json:"active"`            // creating or ready
	Sandbox     *events.Sandbox `json:"sandbox,omitempty"` // internal: how to reach the agent, never served as is
	Version     int64           `json:"version"`
}

// ApplySession folds one event of a session's stream into its document. It is pure: the
// projector decides what to do with versions (skip what was applied, fill gaps from the store).
func ApplySession(d *SessionDoc, e events.Envelope) error {
	switch e.Type {
	case events.SessionRequested:
		var r events.SessionRequestedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		*d = SessionDoc{
			SessionID: r.SessionID, UserID: r.UserID, Dataset: r.Dataset, SampleID: r.SampleID,
			SampleVersion: r.SampleVersion, Status: events.StatusCreating, RequestedAt: r.RequestedAt,
			ExpiresAt: r.ExpiresAt, Active: true, RequestedUS: r.RequestedAt.UnixMicro(),
		}
	case events.SessionReady:
		var r events.SessionReadyData
		if err := e.Decode(&r); err != nil {
			return err
		}
		at := r.ReadyAt
		info := r.Sandbox
		d.Status, d.CreatedAt, d.Sandbox = events.StatusReady, &at, &info
		created := info.CreatedAt
		if created.IsZero() {
			created = at
		}
		d.ContainerInfo = &ContainerInfo{
			ContainerName: info.Name, ServiceURL: info.URL, SampleID: d.SampleID, Status: "running",
			CreatedAt: created, ExpiresAt: d.ExpiresAt, Location: info.Location,
		}
	case events.SessionFailed:
		var r events.SessionFailedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		errInfo := r.Error
		at := r.FailedAt
		d.Status, d.Error, d.Active, d.EndedAt = events.StatusError, &errInfo, false, &at
	case events.SessionEnded:
		var r events.SessionEndedData
		if err := e.Decode(&r); err != nil {
			return err
		}
		at, secs := r.EndedAt, r.BillableSeconds
		d.Status, d.Active, d.EndedAt, d.DurationSeconds = events.EndedStatus(r.Reason), false, &at, &secs
		if d.ContainerInfo != nil {
			d.ContainerInfo.Status = "stopped"
		}
	default:
		return fmt.Errorf("session projector: unknown event type %q", e.Type)
	}
	d.Version = e.Version
	return nil
}

// IsSessionEvent reports whether e belongs to a session stream.
func IsSessionEvent(e events.Envelope) bool {
	switch e.Type {
	case events.SessionRequested, events.SessionReady, events.SessionFailed, events.SessionEnded:
		return true
	}
	return false
}
