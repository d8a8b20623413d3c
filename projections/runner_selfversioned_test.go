package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// summed is a document built from one stream that keeps its own version, like the session and
// interaction read models.
type summed struct {
	Version int64 `json:"version"`
	Sum     int   `json:"sum"`
}

func (d summed) StreamVersion() int64 { return d.Version }

func applySummed(d *summed, e events.Envelope) error {
	var it item
	if err := json.Unmarshal(e.Data, &it); err != nil {
		return err
	}
	d.Version, d.Sum = e.Version, d.Sum+it.V
	return nil
}

// A self-versioned consumer gets each wanted event as delivered, and its own version (not a
// runner checkpoint) makes duplicates, late deliveries and gaps come out right.
func TestSelfVersionedRunnerKeepsNoCheckpoint(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1}, item{V: 2}, item{V: 3}, item{V: 4})
	calls := 0
	handle := func(ctx context.Context, e events.Envelope) error {
		calls++
		return projections.ProjectStream(ctx, ds, "summed", "s-1", e, applySummed, es.Load)
	}
	r := projections.NewRunner("proj", handle, es, ds, projections.RunnerOptions{SelfVersioned: true})
	ctx := context.Background()
	order := []int{0, 0, 2, 1, 0, 3, 2, 3} // v1, v1 again, v3 (gap: v2 first), late ones
	for _, i := range order {
		if err := r.Deliver(ctx, evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	d, err := projections.Get[summed](ctx, ds, "summed", "s-1")
	if err != nil || d.Version != 4 || d.Sum != 10 {
		t.Fatalf("document %+v (%v), want version 4 and every item added once (sum 10)", d, err)
	}
	if calls != len(order) {
		t.Fatalf("handler called %d times, want once per delivery (%d)", calls, len(order))
	}
	if n, err := ds.Count(ctx, projections.CheckpointsColl); err != nil || n != 0 {
		t.Fatalf("%d checkpoints (%v), want none for a self-versioned consumer", n, err)
	}
}

func TestSelfVersionedRunnerDeadLettersWithoutCheckpoint(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1})
	calls := 0
	r := projections.NewRunner("proj", func(context.Context, events.Envelope) error { calls++; return errors.New("poison") }, es, ds,
		projections.RunnerOptions{SelfVersioned: true, Attempts: 3, Sleep: func(context.Context, time.Duration) error { return nil }})
	ctx := context.Background()
	if err := r.Deliver(ctx, evs[0]); err != nil {
		t.Fatalf("a dead-lettered event is a handled delivery, got %v", err)
	}
	if calls != 3 {
		t.Fatalf("%d tries, want 3", calls)
	}
	if _, err := projections.Get[projections.DeadLetter](ctx, ds, projections.DeadLettersColl, "proj:s-1:1"); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if n, _ := ds.Count(ctx, projections.CheckpointsColl); n != 0 {
		t.Fatalf("%d checkpoints, want none", n)
	}
	// Try (the inline path) reports the failure instead of dead-lettering.
	if err := r.Try(ctx, evs[0]); err == nil {
		t.Fatal("Try of a failing handler returned nil")
	}
}
