package events

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// stored gives decided events the versions a store would.
func stored(s *Session, evs ...Envelope) []Envelope {
	for i := range evs {
		evs[i].Version = s.Version + int64(i) + 1
	}
	return evs
}

func apply(t *testing.T, s *Session, evs []Envelope) {
	t.Helper()
	for _, e := range stored(s, evs...) {
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
}

func requested(t *testing.T) Session {
	t.Helper()
	e, err := RequestSession("e1", SessionRequestedData{SessionID: "s1", UserID: "u1", Dataset: "d", SampleID: "x", TTLMinutes: 30, RequestedAt: t0, CentsPerMinute: 10})
	if err != nil {
		t.Fatal(err)
	}
	var s Session
	apply(t, &s, []Envelope{e})
	return s
}

func TestRequestSessionTTL(t *testing.T) {
	for _, ttl := range []int{0, -1, 1441} {
		if _, err := RequestSession("e", SessionRequestedData{TTLMinutes: ttl, RequestedAt: t0}); !errors.Is(err, ErrBadTTL) {
			t.Errorf("ttl %d: %v, want ErrBadTTL", ttl, err)
		}
	}
	s := requested(t)
	if s.Status != StatusCreating || !s.ExpiresAt.Equal(t0.Add(30*time.Minute)) || s.Version != 1 {
		t.Fatalf("after request: %+v", s)
	}
	if !errors.Is(s.CanRun(t0), ErrSessionNotReady) {
		t.Fatal("a creating session takes work")
	}
}

func TestSessionLifecycleBillsOnce(t *testing.T) {
	s := requested(t)
	ready := t0.Add(2 * time.Second)
	evs, err := s.MarkReady("e2", ready, Sandbox{Name: "sb", URL: "unix:///x"})
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	apply(t, &s, evs)
	if s.Status != StatusReady || !s.ReadyAt.Equal(ready) || s.Sandbox.Name != "sb" {
		t.Fatalf("after ready: %+v", s)
	}
	if again, _ := s.MarkReady("e2b", ready, Sandbox{}); again != nil {
		t.Fatal("ready twice decided an event")
	}
	if err := s.CanRun(ready); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.CanRun(s.ExpiresAt), ErrSessionExpired) {
		t.Fatal("an expired session takes work")
	}
	if got := s.DurationSeconds(ready.Add(5 * time.Second)); got != 5 {
		t.Fatalf("running duration %v", got)
	}
	end := ready.Add(61 * time.Second)
	evs, err = s.End("e3", end, EndClosed)
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	apply(t, &s, evs)
	if s.Status != StatusClosed || s.Ended.BillableSeconds != 61 || s.Ended.ChargeCents != 11 || s.Ended.CentsPerMinute != 10 {
		t.Fatalf("after close: %+v %+v", s, s.Ended)
	}
	if again, _ := s.End("e4", end.Add(time.Hour), EndClosed); again != nil {
		t.Fatal("closing twice decided a second end")
	}
	if s.DurationSeconds(end.Add(time.Hour)) != 61 {
		t.Fatal("duration of an ended session moved")
	}
	if !errors.Is(s.CanRun(end), ErrSessionEnded) {
		t.Fatal("an ended session takes work")
	}
}

func TestSessionEndReasons(t *testing.T) {
	for reason, status := range map[string]string{EndClosed: StatusClosed, EndExpired: StatusTerminated, EndTerminated: StatusTerminated, EndBalanceExhausted: StatusTerminated, EndError: StatusTerminated} {
		s := requested(t)
		evs, _ := s.MarkReady("r", t0, Sandbox{})
		apply(t, &s, evs)
		evs, _ = s.End("e", t0.Add(time.Second), reason)
		apply(t, &s, evs)
		if s.Status != status || s.Ended.Reason != reason {
			t.Errorf("%s: status %s", reason, s.Status)
		}
	}
}

func TestSessionClosedWhileCreatingIsFree(t *testing.T) {
	s := requested(t)
	evs, _ := s.End("e", t0.Add(time.Minute), EndClosed)
	apply(t, &s, evs)
	if s.Status != StatusClosed || s.Ended.BillableSeconds != 0 || s.Ended.ChargeCents != 0 {
		t.Fatalf("%+v", s.Ended)
	}
	// The sandbox that was starting must not make it ready again.
	if evs, _ := s.MarkReady("r", t0.Add(2*time.Minute), Sandbox{}); evs != nil {
		t.Fatal("an ended session became ready")
	}
}

func TestSessionFailed(t *testing.T) {
	s := requested(t)
	evs, _ := s.Fail("f", t0, "sandbox_start_failed", "boom")
	apply(t, &s, evs)
	if s.Status != StatusError || s.Error.Code != "sandbox_start_failed" || s.Active() || !s.Done() {
		t.Fatalf("%+v", s)
	}
	if evs, _ := s.End("e", t0, EndClosed); evs != nil {
		t.Fatal("a failed session was billed")
	}
}

func TestSessionEndNeverBeforeReady(t *testing.T) {
	s := requested(t)
	evs, _ := s.MarkReady("r", t0.Add(time.Minute), Sandbox{})
	apply(t, &s, evs)
	evs, _ = s.End("e", t0, EndError)
	apply(t, &s, evs)
	if s.Ended.BillableSeconds != 0 || s.Ended.ChargeCents != 0 {
		t.Fatalf("%+v", s.Ended)
	}
}

func TestFoldSessionRoundTrip(t *testing.T) {
	s := requested(t)
	e, _ := RequestSession("e1", SessionRequestedData{SessionID: "s1", UserID: "u1", TTLMinutes: 5, RequestedAt: t0})
	e.Version = 1
	got, ok, err := FoldSession([]Envelope{e})
	if err != nil || !ok || got.SessionID != "s1" || got.Status != StatusCreating {
		t.Fatal(got, ok, err)
	}
	if _, ok, _ := FoldSession(nil); ok {
		t.Fatal("empty stream folded to a session")
	}
	_ = s
}
