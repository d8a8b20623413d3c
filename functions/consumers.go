package functions

import (
	"context"
	"fmt"

	"github.com/codeset/codeset/events"
)

// Consumer is a projector or a process manager fed by the bus. Its Name is also its Cloud
// Function name and its Pub/Sub push subscription. Handle sees every event of a stream in order
// (the runner fills gaps from the store and skips what it has already applied), but after a
// crash it may see an event again: it must be idempotent.
type Consumer struct {
	Name   string
	Wants  func(e events.Envelope) bool // nil: every event
	Handle func(ctx context.Context, a *App, e events.Envelope) error
	// Inline projectors also run in the request that appended the events (see Record), so a
	// client reads its own writes at once; the bus's later delivery is then a no-op.
	Inline bool
	// SelfVersioned handlers keep their own version per stream (projections.ProjectStream): the
	// runner keeps no checkpoint for them (see projections.RunnerOptions.SelfVersioned).
	SelfVersioned bool
}

// Consumers is every consumer of the system; capability files add theirs from init.
var Consumers []Consumer

// Record appends events to stream at the expected version, publishes them, and applies them to
// the inline projectors before returning. Every command handler writes through Record. Inline
// projectors run through their runner, whose checkpoint makes the bus's later delivery a no-op.
func (a *App) Record(ctx context.Context, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	stored, err := a.Log.Append(ctx, stream, expected, evs...)
	if err != nil {
		return nil, err
	}
	p := a.pipeline()
	for _, c := range Consumers {
		if !c.Inline {
			continue
		}
		for _, e := range stored {
			if c.Wants != nil && !c.Wants(e) {
				continue
			}
			// The events are durable: a failure here is repaired by the bus's delivery, which
			// retries in full; the request does not wait for backoffs.
			if err := p.runners[c.Name].Try(ctx, e); err != nil {
				a.Logger.WarnContext(ctx, "inline projection failed; the bus will retry", "consumer", c.Name, "stream", e.Stream, "version", e.Version, "error", err.Error())
			}
		}
	}
	return stored, nil
}

// consumer returns the consumer named name.
func consumer(name string) (Consumer, error) {
	for _, c := range Consumers {
		if c.Name == name {
			return c, nil
		}
	}
	return Consumer{}, fmt.Errorf("no consumer %q", name)
}
