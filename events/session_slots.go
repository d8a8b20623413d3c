package events

// The session slots of a user: one stream per user, "sessionslots-<user id>", on which the
// active-session limit is decided. Creating a session first reserves a slot for it on this
// stream at the version folded, so two creates racing anywhere (two requests, two processes, two
// Cloud Functions instances) cannot both take the last slot: the store lets one append win. The
// session's end (session.failed or session.ended, however it came about) releases its slot.
//
// The reservation and the session's first event are two appends on two streams. A process that
// dies between them leaves a reservation with no session, whose release would never come: so a
// reservation holds its slot only until HeldUntil, its session's expires_at plus
// SlotReleaseGrace, by when the reaper has ended any session that did start.

import (
	"errors"
	"time"
)

// SessionSlotsStream is the stream of userID's session slots.
func SessionSlotsStream(userID string) string { return "sessionslots-" + userID }

// Event types of the session slots aggregate.
const (
	SessionSlotReserved = "session_slot.reserved"
	SessionSlotReleased = "session_slot.released"
)

// SlotReleaseGrace is how long past its session's expires_at a reservation that was never
// released still holds its slot. The reaper ends an expired session within its period (seconds),
// and that end releases the slot; only a reservation whose session was never created (its process
// died between the two appends), or a reaper stopped for that long, lets go this way.
const SlotReleaseGrace = 10 * time.Minute

// SlotReleaseNotCreated is the reason of a release by a create that could not record its session.
const SlotReleaseNotCreated = "not_created"

// ErrSessionLimit: the user already holds as many active sessions as allowed.
var ErrSessionLimit = errors.New("active session limit reached")

// SessionSlotReservedData is the data of SessionSlotReserved.
type SessionSlotReservedData struct {
	SessionID  string    `json:"session_id"`
	ReservedAt time.Time `json:"reserved_at"`
	// HeldUntil is when the slot frees itself if no release came (see SlotReleaseGrace).
	HeldUntil time.Time `json:"held_until"`
}

// SessionSlotReleasedData is the data of SessionSlotReleased.
type SessionSlotReleasedData struct {
	SessionID  string    `json:"session_id"`
	ReleasedAt time.Time `json:"released_at"`
	// Reason is the session's end reason (SessionEndedData.Reason), "failed" for a session that
	// failed to start, or SlotReleaseNotCreated.
	Reason string `json:"reason"`
}

// SessionSlots is the state of a user's slots: the reservations not yet released.
type SessionSlots struct {
	Version int64
	held    map[string]time.Time // session id -> held until
}

// Apply folds one event of the slots' stream.
func (s *SessionSlots) Apply(e Envelope) error {
	switch e.Type {
	case SessionSlotReserved:
		var d SessionSlotReservedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if s.held == nil {
			s.held = map[string]time.Time{}
		}
		s.held[d.SessionID] = d.HeldUntil
	case SessionSlotReleased:
		var d SessionSlotReleasedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		delete(s.held, d.SessionID)
	}
	s.Version = e.Version
	return nil
}

// StreamVersion is the version of the slots' stream folded.
func (s *SessionSlots) StreamVersion() int64 { return s.Version }

// SessionSlotsOf folds a user's slots stream.
func SessionSlotsOf(evs []Envelope) (*SessionSlots, error) {
	s := &SessionSlots{}
	for _, e := range evs {
		if err := s.Apply(e); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Held is how many slots are held at now.
func (s *SessionSlots) Held(now time.Time) int {
	n := 0
	for _, until := range s.held {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// Holds reports whether sessionID holds a slot (released never, lapsed or not).
func (s *SessionSlots) Holds(sessionID string) bool {
	_, ok := s.held[sessionID]
	return ok
}

// Reserve decides a slot for sessionID at now, held until its session's expiresAt plus
// SlotReleaseGrace, or ErrSessionLimit when max slots are held. Reserving a slot the session
// already holds decides nothing.
func (s *SessionSlots) Reserve(eventID, userID, sessionID string, now, expiresAt time.Time, max int64) ([]Envelope, error) {
	if _, ok := s.held[sessionID]; ok {
		return nil, nil
	}
	if int64(s.Held(now)) >= max {
		return nil, ErrSessionLimit
	}
	now = now.UTC().Truncate(time.Microsecond)
	e, err := New(eventID, userID, SessionSlotReserved, now, SessionSlotReservedData{
		SessionID: sessionID, ReservedAt: now,
		HeldUntil: expiresAt.Add(SlotReleaseGrace).UTC().Truncate(time.Microsecond),
	})
	return []Envelope{e}, err
}

// Release decides that sessionID's slot is free again, for reason. A session holding no slot
// (released already, or created before slots were kept) decides nothing, so every end of a
// session may release it, as often as it is delivered.
func (s *SessionSlots) Release(eventID, userID, sessionID string, at time.Time, reason string) ([]Envelope, error) {
	if _, ok := s.held[sessionID]; !ok {
		return nil, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	e, err := New(eventID, userID, SessionSlotReleased, at, SessionSlotReleasedData{SessionID: sessionID, ReleasedAt: at, Reason: reason})
	return []Envelope{e}, err
}
