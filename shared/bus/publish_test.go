package bus_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/bus"
)

// countingStore counts the outbox reads and the marking writes the dispatcher makes.
type countingStore struct {
	events.Store
	reads, marks atomic.Int64
}

func (s *countingStore) Unpublished(ctx context.Context, limit int) ([]events.Envelope, error) {
	s.reads.Add(1)
	return s.Store.Unpublished(ctx, limit)
}

func (s *countingStore) MarkPublished(ctx context.Context, evs ...events.Envelope) error {
	s.marks.Add(1)
	return s.Store.MarkPublished(ctx, evs...)
}

// Published events are delivered as they were handed over: the outbox is read at start and on
// the poll, not once per append.
func TestPublishDeliversWithoutReadingTheOutbox(t *testing.T) {
	s := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "bus.db"))}
	var j journal
	d := bus.New(s, []bus.Consumer{{Name: "c", Deliver: j.recorder("c")}}, bus.Options{Poll: time.Hour, Logger: quiet})
	runBus(t, d)
	waitFor(t, "the start-up read", func() bool { return s.reads.Load() > 0 })
	before := s.reads.Load()
	log := &outbox{store: s, pub: d}
	for v := range 20 {
		if _, err := log.Append(context.Background(), "s", int64(v), newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the deliveries", func() bool { return len(j.versions("c", "s")) == 20 })
	waitFor(t, "the outbox to empty", outboxEmpty(t, s.Store))
	if got := j.versions("c", "s"); !slices.Equal(got, seq(20)) {
		t.Fatalf("delivered %v, want 1..20 once each in order", got)
	}
	if n := s.reads.Load() - before; n != 0 {
		t.Fatalf("%d outbox reads for 20 published events, want none", n)
	}
}

// The events handled in a burst are marked published in a few writes, not one each.
func TestHandledEventsAreMarkedTogether(t *testing.T) {
	s := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "bus.db"))}
	var j journal
	d := bus.New(s, []bus.Consumer{{Name: "c", Deliver: j.recorder("c")}}, bus.Options{Poll: time.Hour, MarkDelay: 50 * time.Millisecond, Logger: quiet})
	runBus(t, d)
	log := &outbox{store: s, pub: d}
	for i := range 20 {
		if _, err := log.Append(context.Background(), fmt.Sprintf("s%d", i), 0, newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the outbox to empty", outboxEmpty(t, s.Store))
	if n := s.marks.Load(); n > 5 {
		t.Fatalf("%d marking writes for a burst of 20 events, want a few", n)
	}
}

// Past MaxInflight events waiting, Publish keeps only a note, and the dispatcher reads the rest
// from the outbox: nothing published is lost.
func TestPublishBeyondMaxInflightFallsBackToTheOutbox(t *testing.T) {
	s := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "bus.db"))}
	var j journal
	release := make(chan struct{})
	slow := func(ctx context.Context, e events.Envelope) error {
		<-release
		j.add("slow", e)
		return nil
	}
	d := bus.New(s, []bus.Consumer{{Name: "slow", Deliver: slow}}, bus.Options{Poll: time.Hour, MaxInflight: 4, Logger: quiet})
	runBus(t, d)
	log := &outbox{store: s, pub: d}
	for v := range 30 {
		if _, err := log.Append(context.Background(), "s", int64(v), newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, "the outbox to empty", outboxEmpty(t, s.Store))
	if got := j.versions("slow", "s"); !slices.Equal(got, seq(30)) {
		t.Fatalf("delivered %v, want 1..30 once each in order", got)
	}
}
