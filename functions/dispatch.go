package functions

import (
	"context"
	"fmt"
	"sync"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/bus"
)

// The bus task of `codeset serve` on the embedded default: the in-process dispatcher over the
// SQLite outbox, which is also the outbox relay (it starts with whatever was left unpublished).
// On GCP there is no such loop: Pub/Sub pushes to the consumer endpoints, which call Deliver.
func init() {
	Loops = append(Loops, Task{Name: "bus", Run: func(ctx context.Context, a *App) error {
		if d := a.pipeline().bus; d != nil {
			return d.Run(ctx)
		}
		return nil
	}})
}

// pipeline is an App's consumer machinery: one runner per consumer, shared by the inline path
// (Record), the bus and the push handler (Deliver), so that their deliveries of one stream are
// serialised and one checkpoint serves them all; and, on the embedded default, the dispatcher.
type pipeline struct {
	once    sync.Once
	runners map[string]*projections.Runner
	bus     *bus.Dispatcher
}

// pipelines maps an *App to its pipeline. It lives here rather than in App so that the consumer
// machinery stays in one file; Close forgets the App.
var pipelines sync.Map

// pipeline returns a's pipeline, building the runners on first use from a.Events and a.Docs
// (set by Open before anything delivers).
func (a *App) pipeline() *pipeline {
	v, _ := pipelines.LoadOrStore(a, &pipeline{})
	p := v.(*pipeline)
	p.once.Do(func() {
		a.closers = append(a.closers, func() error { pipelines.Delete(a); return nil })
		p.runners = make(map[string]*projections.Runner, len(Consumers))
		opts := projections.RunnerOptions{
			Attempts: int(a.Config.ConsumerAttempts), Backoff: a.Config.ConsumerBackoff,
			Clock: a.Clock, Logger: a.Logger,
		}
		for _, c := range Consumers {
			handle := c.Handle
			opts.Wants, opts.SelfVersioned = c.Wants, c.SelfVersioned
			p.runners[c.Name] = projections.NewRunner(c.Name, func(ctx context.Context, e events.Envelope) error {
				return handle(ctx, a, e)
			}, a.Events, a.Docs, opts)
		}
	})
	return p
}

// startBus makes the embedded default's dispatcher a's publisher. The Loops task runs it.
func (a *App) startBus() {
	p := a.pipeline()
	consumers := make([]bus.Consumer, 0, len(Consumers))
	for _, c := range Consumers {
		consumers = append(consumers, bus.Consumer{Name: c.Name, Wants: c.Wants, Deliver: p.runners[c.Name].Deliver})
	}
	p.bus = bus.New(a.Events, consumers, bus.Options{Logger: a.Logger})
	a.Log.Publisher = p.bus
}

// Deliver hands e to the consumer named name through its runner: skipped when already applied,
// gaps filled from the store, retried, dead-lettered after the configured attempts. The GCP push
// handler calls it for each Pub/Sub delivery; an error means "redeliver later".
func (a *App) Deliver(ctx context.Context, name string, e events.Envelope) error {
	c, err := consumer(name)
	if err != nil {
		return err
	}
	if c.Wants != nil && !c.Wants(e) {
		return nil // a subscription without a filter may push events this consumer ignores
	}
	r := a.pipeline().runners[name]
	if r == nil {
		return fmt.Errorf("consumer %q registered after the App was opened", name)
	}
	return r.Deliver(ctx, e)
}
