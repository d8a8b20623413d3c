package app

import (
	"context"
	"fmt"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/bus"
)

// pipeline is an App's consumer machinery: one runner per consumer, shared by the inline path
// (Update), the bus and the push handler (Deliver), so that their deliveries of one stream are
// serialised and one checkpoint serves them all; and, on the embedded default, the dispatcher
// over the SQLite outbox, which is also the outbox relay (it starts with whatever was left
// unpublished). On GCP there is no dispatcher: Pub/Sub pushes to the consumer endpoints.
type pipeline struct {
	runners map[string]*projections.Runner
	bus     *bus.Dispatcher
}

// openPipeline builds a's runners from a.Events and a.Docs, which Open has set.
func (a *App) openPipeline() {
	p := &pipeline{runners: make(map[string]*projections.Runner, len(a.Wiring.Consumers))}
	opts := projections.RunnerOptions{
		Attempts: int(a.Config.ConsumerAttempts), Backoff: a.Config.ConsumerBackoff,
		Clock: a.Clock, Logger: a.Logger,
	}
	for _, c := range a.Wiring.Consumers {
		handle := c.Handle
		opts.Wants, opts.SelfVersioned = c.Wants, c.SelfVersioned
		p.runners[c.Name] = projections.NewRunner(c.Name, func(ctx context.Context, e events.Envelope) error {
			return handle(ctx, a, e)
		}, a.Events, a.Docs, opts)
	}
	a.pipeline = p
}

// startBus makes the embedded default's dispatcher a's publisher. Start runs it.
func (a *App) startBus() {
	consumers := make([]bus.Consumer, 0, len(a.Wiring.Consumers))
	for _, c := range a.Wiring.Consumers {
		consumers = append(consumers, bus.Consumer{Name: c.Name, Wants: c.Wants, Deliver: a.pipeline.runners[c.Name].Deliver})
	}
	a.pipeline.bus = bus.New(a.Events, consumers, bus.Options{Logger: a.Logger})
	a.publisher = a.pipeline.bus
}

// project applies stored events to the inline projectors through their runners, whose
// checkpoints make the bus's later delivery a no-op. The events are durable: a failure here is
// repaired by the bus's delivery, which retries in full; the request does not wait for backoffs.
func (a *App) project(ctx context.Context, stored []events.Envelope) {
	if a.pipeline == nil {
		return // an App not built by Open (a test's)
	}
	for _, c := range a.Wiring.Consumers {
		if !c.Inline {
			continue
		}
		if c.InlineBatch != nil {
			a.projectBatch(ctx, c, stored)
			continue
		}
		for _, e := range stored {
			if c.Wants != nil && !c.Wants(e) {
				continue
			}
			if err := a.pipeline.runners[c.Name].Try(ctx, e); err != nil {
				a.Logger.WarnContext(ctx, "inline projection failed; the bus will retry", "consumer", c.Name, "stream", e.Stream, "version", e.Version, "error", err.Error())
			}
		}
	}
}

// projectBatch hands the events of stored that c wants to c.InlineBatch at once.
func (a *App) projectBatch(ctx context.Context, c Consumer, stored []events.Envelope) {
	wanted := stored
	if c.Wants != nil {
		wanted = nil
		for _, e := range stored {
			if c.Wants(e) {
				wanted = append(wanted, e)
			}
		}
	}
	if len(wanted) == 0 {
		return
	}
	if err := c.InlineBatch(ctx, a, wanted); err != nil {
		a.Logger.WarnContext(ctx, "inline projection failed; the bus will retry", "consumer", c.Name, "stream", wanted[0].Stream, "error", err.Error())
	}
}

// Deliver hands e to the consumer named name through its runner: skipped when already applied,
// gaps filled from the store, retried, dead-lettered after the configured attempts. The GCP push
// handler calls it for each Pub/Sub delivery; an error means "redeliver later".
func (a *App) Deliver(ctx context.Context, name string, e events.Envelope) error {
	c, err := a.Wiring.consumer(name)
	if err != nil {
		return err
	}
	if c.Wants != nil && !c.Wants(e) {
		return nil // a subscription without a filter may push events this consumer ignores
	}
	var r *projections.Runner
	if a.pipeline != nil {
		r = a.pipeline.runners[name]
	}
	if r == nil {
		return fmt.Errorf("consumer %q has no runner", name)
	}
	return r.Deliver(ctx, e)
}
