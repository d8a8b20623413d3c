package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/codeset/codeset/events"
)

// Aggregate is the state of one stream folded from its events: Update appends at its
// StreamVersion and applies what it appended. Every aggregate of events/ is one (as a pointer).
type Aggregate interface {
	StreamVersion() int64
	Apply(events.Envelope) error
}

// Update is the write path, the only way anything is written: it loads stream, folds it, asks
// decide for the events to append, appends them at the version folded (all or nothing, stored
// unpublished: the outbox), applies them to the inline projectors, publishes them, and returns
// the aggregate with the new events applied and the events as stored. A decision of no events
// writes nothing and returns the aggregate as folded; an error of decide is returned as is.
//
// When another writer got there first (events.ErrConcurrency, or events.ErrIDConflict: a racing
// writer of the same fact, whose event id is derived from it) it loads and decides again, up to
// maxAttempts rounds with a random pause between them; a decision that sees its fact recorded
// then returns nothing. This is how concurrent deliveries of one webhook credit once.
//
// Publishing is best effort after the commit: a failure is logged and left to the relay,
// because the events are already durable in the outbox.
func Update[S Aggregate](ctx context.Context, a *App, stream string, fold func([]events.Envelope) (S, error), decide func(S) ([]events.Envelope, error), opts ...Option) (S, []events.Envelope, error) {
	var u update
	for _, o := range opts {
		o(&u)
	}
	appendCtx := ctx
	if u.withoutSync {
		appendCtx = events.WithoutSync(ctx)
	}
	for attempt := 0; ; attempt++ {
		s, err := state(ctx, a, stream, fold, &u, attempt)
		if err != nil {
			return s, nil, err
		}
		evs, err := decide(s)
		if err != nil || len(evs) == 0 {
			return s, nil, err
		}
		stored, err := a.Events.Append(appendCtx, stream, s.StreamVersion(), evs...)
		if err != nil {
			err = fmt.Errorf("append %s@%d: %w", stream, s.StreamVersion(), err)
			if u.newStream || attempt+1 >= maxAttempts || !(errors.Is(err, events.ErrConcurrency) || errors.Is(err, events.ErrIDConflict)) {
				return s, nil, err
			}
			if err := pause(ctx, attempt); err != nil {
				return s, nil, err
			}
			continue
		}
		if !u.noInline {
			a.project(ctx, stored)
		}
		a.publish(ctx, stored)
		for _, e := range stored {
			if err := s.Apply(e); err != nil {
				return s, stored, err
			}
		}
		return s, stored, nil
	}
}

// maxAttempts bounds the rounds of one Update. The event store commits concurrent appends
// together, so every loser of a race learns it in the same round: this allows as many rounds as
// there are plausible contenders (a burst of webhooks or logins on one stream).
const maxAttempts = 100

// pause waits before round attempt+2, a random few milliseconds growing with the rounds lost
// (capped), so that the losers of one round do not collide again in the next.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(1+rand.IntN(min(5*(attempt+1), 50))) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// state is the aggregate that round attempt (from 0) decides on.
func state[S Aggregate](ctx context.Context, a *App, stream string, fold func([]events.Envelope) (S, error), u *update, attempt int) (S, error) {
	switch {
	case attempt == 0 && u.known != nil:
		s, ok := u.known.(S)
		if !ok {
			s, _ = fold(nil)
			return s, fmt.Errorf("update %s: From holds a %T, not the fold's state", stream, u.known)
		}
		return s, nil
	case u.newStream:
		return fold(nil)
	}
	evs, err := a.Events.Load(ctx, stream, 1)
	if err != nil {
		empty, _ := fold(nil) // never a nil state, even on an error
		return empty, fmt.Errorf("load %s: %w", stream, err)
	}
	return fold(evs)
}

// Option changes what Update does for one write; each exists because some write needs it.
type Option func(*update)

type update struct {
	known       Aggregate
	newStream   bool
	withoutSync bool
	noInline    bool
}

// From decides the first round on s, a state of the stream the caller already holds (a request
// just delivered, the state after its previous write), without reading the stream; a conflict
// reads it. Update applies the new events to s.
func From(s Aggregate) Option { return func(u *update) { u.known = s } }

// NewStream appends the first events of a stream that must not exist yet (its id was just
// made): at version 0, without reading it; a conflict is an error, never a retry.
func NewStream() Option { return func(u *update) { u.newStream = true } }

// WithoutSync lets the store commit without flushing to stable storage (see events.WithoutSync):
// only for events whose loss in a power cut does no harm (the executor's claim on a command, a
// session slot's reservation that its session's durable request follows).
func WithoutSync() Option { return func(u *update) { u.withoutSync = true } }

// NoInline leaves the events to the bus: the request does not wait for the inline projectors
// (the readers of these events fold the stream themselves until the bus has projected them).
func NoInline() Option { return func(u *update) { u.noInline = true } }

// publish hands stored to the bus after the commit.
func (a *App) publish(ctx context.Context, stored []events.Envelope) {
	if a.publisher == nil || len(stored) == 0 {
		return
	}
	if err := a.publisher.Publish(context.WithoutCancel(ctx), stored...); err != nil {
		a.Logger.WarnContext(ctx, "publish after commit failed; the relay will retry", "stream", stored[0].Stream, "error", err.Error())
	}
}

// Relay publishes up to limit events still unpublished, oldest first, and returns how many it
// handed over. One pass per call, because a publisher may mark events published only later
// (the in-process dispatcher marks them once consumed).
func (a *App) Relay(ctx context.Context, limit int) (int, error) {
	evs, err := a.Events.Unpublished(ctx, limit)
	if err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	if len(evs) == 0 || a.publisher == nil {
		return 0, nil
	}
	if err := a.publisher.Publish(ctx, evs...); err != nil {
		return 0, fmt.Errorf("relay publish: %w", err)
	}
	return len(evs), nil
}

// Head is the aggregate of a stream whose decisions need no state but its version: a new
// stream's first events (NewStream), or events decided elsewhere.
type Head struct{ Version int64 }

// StreamVersion implements Aggregate.
func (h *Head) StreamVersion() int64 { return h.Version }

// Apply implements Aggregate.
func (h *Head) Apply(e events.Envelope) error { h.Version = e.Version; return nil }

// FoldHead folds a stream to its Head.
func FoldHead(evs []events.Envelope) (*Head, error) {
	h := &Head{}
	for _, e := range evs {
		h.Apply(e)
	}
	return h, nil
}

// Create appends evs as the first events of a new stream: Update with NewStream, for a
// decision already made (a request's event with a fresh id).
func Create(ctx context.Context, a *App, stream string, evs []events.Envelope, opts ...Option) ([]events.Envelope, error) {
	_, stored, err := Update(ctx, a, stream, FoldHead, func(*Head) ([]events.Envelope, error) { return evs, nil }, append(opts, NewStream())...)
	return stored, err
}
