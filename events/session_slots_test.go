package events

import (
	"errors"
	"testing"
	"time"
)

func TestSessionSlots(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(30 * time.Minute)
	var s SessionSlots
	apply := folder(t, &s)

	apply(s.Reserve("e1", "u", "s1", now, expires, 2))
	apply(s.Reserve("e2", "u", "s2", now, expires, 2))
	if evs, err := s.Reserve("e3", "u", "s1", now, expires, 2); err != nil || len(evs) != 0 {
		t.Fatalf("reserving a held slot again: %v %v, want nothing", evs, err)
	}
	if _, err := s.Reserve("e3", "u", "s3", now, expires, 2); !errors.Is(err, ErrSessionLimit) {
		t.Fatalf("a third slot of two: %v, want ErrSessionLimit", err)
	}

	apply(s.Release("e4", "u", "s1", now, EndClosed))
	if evs, err := s.Release("e5", "u", "s1", now, EndClosed); err != nil || len(evs) != 0 {
		t.Fatalf("releasing twice: %v %v, want nothing", evs, err)
	}
	if evs, err := s.Release("e5", "u", "never-reserved", now, "failed"); err != nil || len(evs) != 0 {
		t.Fatalf("releasing a session that held no slot: %v %v, want nothing", evs, err)
	}
	if s.Held(now) != 1 {
		t.Fatalf("held %d after a release, want 1", s.Held(now))
	}
	apply(s.Reserve("e6", "u", "s3", now, expires, 2))

	// A reservation never released (its session never recorded) lapses after its session's
	// expiry and the grace, and frees its slot for a new session.
	later := expires.Add(SlotReleaseGrace)
	if s.Held(later.Add(-time.Microsecond)) != 2 || s.Held(later) != 0 {
		t.Fatalf("held %d just before the lapse, %d at it; want 2 and 0", s.Held(later.Add(-time.Microsecond)), s.Held(later))
	}
	apply(s.Reserve("e7", "u", "s4", later, later.Add(time.Hour), 2))
}
