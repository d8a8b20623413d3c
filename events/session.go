package events

// The session aggregate: one stream per session, "session-<id>". A session is requested
// (creating), becomes ready when its sandbox answers (billing starts), or fails to start (error);
// it ends once, closed by its user or terminated by the system, and the event that ends it
// carries its usage (SessionEndedData, shared with billing).

import (
	"errors"
	"fmt"
	"time"
)

// SessionStream is the stream of a session.
func SessionStream(id string) string { return "session-" + id }

// Event types of the session aggregate.
const (
	SessionRequested = "session.requested"
	SessionReady     = "session.ready"
	SessionFailed    = "session.failed"
	SessionEnded     = "session.ended" // data: SessionEndedData (events/billing.go)
)

// Session statuses, as the spec names them.
const (
	StatusCreating   = "creating"
	StatusReady      = "ready"
	StatusError      = "error"
	StatusClosed     = "closed"
	StatusTerminated = "terminated"
)

// Bounds of a session's time to live, in minutes.
const (
	MinTTLMinutes = 1
	MaxTTLMinutes = 1440
)

// Domain errors of the session aggregate.
var (
	// ErrSessionNotReady: the session is still starting (or never started).
	ErrSessionNotReady = errors.New("session is not ready yet")
	// ErrSessionEnded: the session was closed, terminated or failed to start.
	ErrSessionEnded = errors.New("session has ended")
	// ErrSessionExpired: the session is past its expires_at.
	ErrSessionExpired = errors.New("session has expired")
	// ErrBadTTL: the time to live is outside [MinTTLMinutes, MaxTTLMinutes].
	ErrBadTTL = fmt.Errorf("ttl_minutes must be between %d and %d", MinTTLMinutes, MaxTTLMinutes)
)

// SessionRequestedData is the data of SessionRequested. The sample's environment and the price
// are copied in so that neither a later catalog change nor a price change rewrites the session.
type SessionRequestedData struct {
	SessionID      string      `json:"session_id"`
	UserID         string      `json:"user_id"`
	Dataset        string      `json:"dataset"`
	SampleID       string      `json:"sample_id"`
	SampleVersion  int         `json:"sample_version"`
	TTLMinutes     int         `json:"ttl_minutes"`
	RequestedAt    time.Time   `json:"requested_at"`
	ExpiresAt      time.Time   `json:"expires_at"`
	CentsPerMinute int64       `json:"cents_per_minute"`
	Env            Environment `json:"environment"`
}

// SessionReadyData is the data of SessionReady: billing starts at ReadyAt.
type SessionReadyData struct {
	ReadyAt time.Time `json:"ready_at"`
	Sandbox Sandbox   `json:"sandbox"`
}

// Sandbox is what a session's running sandbox is known by, enough to reach it again after a
// restart and from any process. It holds no secret: the agent's secret is derived from a key
// the servers hold, SecretKeyID and SecretNonce (app.NewSandboxSecret).
type Sandbox struct {
	Name string `json:"name"` // container or service name
	URL  string `json:"url"`  // http(s)://... or unix:///path/to.sock
	// LegacySecret is the agent's secret as ready events stored it before secrets were derived;
	// it is read from them, never written.
	LegacySecret string    `json:"secret,omitempty"`
	Location     string    `json:"location"` // "local" or the GCP region
	WorkDir      string    `json:"work_dir"` // the repository inside the sandbox
	CreatedAt    time.Time `json:"created_at"`
	PID          int       `json:"pid,omitempty"`           // local runtime: the agent's process
	SecretKeyID  string    `json:"secret_key_id,omitempty"` // the kid of the key the secret derives from
	SecretNonce  string    `json:"secret_nonce,omitempty"`  // the secret's nonce (not secret)
}

// ErrorInfo is the spec's error detail: a code for programs and a message for people.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SessionFailedData is the data of SessionFailed: the sandbox could not be started.
type SessionFailedData struct {
	FailedAt time.Time `json:"failed_at"`
	Error    ErrorInfo `json:"error"`
}

// Session is the state of one session, folded from its stream.
type Session struct {
	Version int64 // stream version folded so far
	SessionRequestedData
	Status  string
	ReadyAt time.Time
	Sandbox Sandbox
	Error   *ErrorInfo
	Ended   *SessionEndedData
}

// Apply folds one event of the session's stream.
func (s *Session) Apply(e Envelope) error {
	switch e.Type {
	case SessionRequested:
		if err := e.Decode(&s.SessionRequestedData); err != nil {
			return err
		}
		s.Status = StatusCreating
	case SessionReady:
		var d SessionReadyData
		if err := e.Decode(&d); err != nil {
			return err
		}
		s.ReadyAt, s.Sandbox, s.Status = d.ReadyAt, d.Sandbox, StatusReady
	case SessionFailed:
		var d SessionFailedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		s.Error, s.Status = &d.Error, StatusError
	case SessionEnded:
		var d SessionEndedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		s.Ended = &d
		s.Status = EndedStatus(d.Reason)
	}
	s.Version = e.Version
	return nil
}

// FoldSession folds a session's events; ok is false when the stream is empty.
func FoldSession(evs []Envelope) (s Session, ok bool, err error) {
	for _, e := range evs {
		if err := s.Apply(e); err != nil {
			return s, false, err
		}
	}
	return s, s.Version > 0, nil
}

// EndedStatus is the status of a session that ended for reason: closed by its user, terminated
// by the system for every other reason.
func EndedStatus(reason string) string {
	if reason == EndClosed {
		return StatusClosed
	}
	return StatusTerminated
}

// Active reports whether the session holds a sandbox (or is about to): it counts against the
// user's limit and the reaper watches it.
func (s Session) Active() bool { return s.Status == StatusCreating || s.Status == StatusReady }

// Done reports whether the session will never run anything again.
func (s Session) Done() bool { return s.Version > 0 && !s.Active() }

// DurationSeconds is how long the session was billed for: from ready to its end, or to now
// while it runs; 0 if it never became ready.
func (s Session) DurationSeconds(now time.Time) float64 {
	switch {
	case s.Ended != nil:
		return s.Ended.BillableSeconds
	case s.Status == StatusReady:
		return max(0, now.Sub(s.ReadyAt).Seconds())
	}
	return 0
}

// RequestSession decides a new session. The caller has checked the sample, the balance and the
// user's limit; the domain checks what is its own: the time to live.
func RequestSession(eventID string, d SessionRequestedData) (Envelope, error) {
	if d.TTLMinutes < MinTTLMinutes || d.TTLMinutes > MaxTTLMinutes {
		return Envelope{}, ErrBadTTL
	}
	d.RequestedAt = d.RequestedAt.UTC().Truncate(time.Microsecond)
	d.ExpiresAt = d.RequestedAt.Add(time.Duration(d.TTLMinutes) * time.Minute)
	return New(eventID, d.UserID, SessionRequested, d.RequestedAt, d)
}

// MarkReady decides that the sandbox answered. Only a creating session becomes ready; for any
// other it decides nothing (a duplicate delivery, or a session closed while it was starting),
// and the caller must stop the sandbox it started if the session did not take it.
func (s Session) MarkReady(eventID string, at time.Time, sb Sandbox) ([]Envelope, error) {
	if s.Status != StatusCreating {
		return nil, nil
	}
	e, err := New(eventID, s.UserID, SessionReady, at, SessionReadyData{ReadyAt: at.UTC().Truncate(time.Microsecond), Sandbox: sb})
	return []Envelope{e}, err
}

// Fail decides that the sandbox could not be started. Only a creating session fails.
func (s Session) Fail(eventID string, at time.Time, code, message string) ([]Envelope, error) {
	if s.Status != StatusCreating {
		return nil, nil
	}
	e, err := New(eventID, s.UserID, SessionFailed, at, SessionFailedData{FailedAt: at.UTC().Truncate(time.Microsecond), Error: ErrorInfo{Code: code, Message: message}})
	return []Envelope{e}, err
}

// End decides the end of the session at `at` for reason, billing it from ready to then. A session
// ends once: ending an ended (or failed) session decides nothing, so closing twice never bills
// twice. A session closed while still creating is never billed. The end is never before the
// start of billing, even if clocks disagree.
func (s Session) End(eventID string, at time.Time, reason string) ([]Envelope, error) {
	if !s.Active() {
		return nil, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	var secs float64
	if s.Status == StatusReady {
		if at.Before(s.ReadyAt) {
			at = s.ReadyAt
		}
		secs = at.Sub(s.ReadyAt).Seconds()
	}
	d := SessionEndedData{
		SessionID: s.SessionID, UserID: s.UserID, Reason: reason, EndedAt: at,
		BillableSeconds: secs, CentsPerMinute: s.CentsPerMinute,
		ChargeCents: ChargeCents(secs, s.CentsPerMinute),
	}
	e, err := New(eventID, s.UserID, SessionEnded, at, d)
	return []Envelope{e}, err
}

// CanRun reports whether work (a command, an edit) may be sent to the session at now, as a
// domain error the edge maps to 409. A session past its expiry takes no more work even before the
// reaper has ended it.
func (s Session) CanRun(now time.Time) error {
	switch s.Status {
	case StatusReady:
		if !now.Before(s.ExpiresAt) {
			return ErrSessionExpired
		}
		return nil
	case StatusCreating:
		return ErrSessionNotReady
	}
	return ErrSessionEnded
}
