package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
)

// Collections the runner keeps its bookkeeping in.
const (
	CheckpointsColl = "checkpoints"
	DeadLettersColl = "dead_letters"
)

// Checkpoint is the last version of one stream a consumer has applied (or dead-lettered).
type Checkpoint struct {
	Consumer  string    `json:"consumer"`
	Stream    string    `json:"stream"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeadLetter records an event a consumer gave up on after Attempts failures, so that an
// operator can see it and replay it once the cause is fixed.
type DeadLetter struct {
	Consumer string    `json:"consumer"`
	Stream   string    `json:"stream"`
	Version  int64     `json:"version"`
	EventID  string    `json:"event_id"`
	Type     string    `json:"type"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
}

// RunnerOptions tune retries. Zero values take the defaults.
type RunnerOptions struct {
	Attempts   int           // tries per event before it is dead-lettered; default 5
	Backoff    time.Duration // delay before the second try, doubled after each failure; default 100ms
	MaxBackoff time.Duration // cap of the delay; default 10s
	Clock      clock.Clock   // time of checkpoints and dead letters; default the system clock
	Logger     *slog.Logger  // dead letters are logged here; default slog.Default()
	// Wants is the consumer's filter (nil: every event). Events of a stream the consumer does not
	// want are skipped when a gap is filled, and the checkpoint moves past them.
	Wants func(events.Envelope) bool
	// Sleep waits between tries; default a timer that ends early with ctx. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// SelfVersioned says the handler keeps its own version of each stream, skips what it has
	// already applied and fills gaps itself, in the same transaction as its write (ProjectStream
	// does). The runner then keeps no checkpoint for it: it hands each wanted event to the
	// handler, still with retries and dead letters, and saves a checkpoint read and a durable
	// write per event.
	SelfVersioned bool
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return o
}

// Runner feeds one consumer (a projector or a process manager) with events delivered in any
// order and any number of times, and turns that into exactly one application per event, in
// stream order: it keeps a checkpoint per (consumer, stream) in the document store, skips what is
// at or below it, and fills a gap above it from the event store first. A handler that keeps
// failing is retried with exponential backoff and then dead-lettered, so one poison event never
// blocks its stream. It does not depend on how events arrive (in-process bus, Pub/Sub push).
//
// Checkpoints move after the handler returns, so a crash in between replays the event once:
// handlers must still be idempotent.
type Runner struct {
	name   string
	handle func(context.Context, events.Envelope) error
	events events.Store
	docs   DocStore
	opts   RunnerOptions

	mu    sync.Mutex
	locks map[string]*streamLock
}

type streamLock struct {
	mu   sync.Mutex
	refs int
}

// NewRunner returns the runner of consumer name.
func NewRunner(name string, handle func(context.Context, events.Envelope) error, store events.Store, docs DocStore, opts RunnerOptions) *Runner {
	return &Runner{name: name, handle: handle, events: store, docs: docs, opts: opts.withDefaults(), locks: map[string]*streamLock{}}
}

// Name is the consumer's name.
func (r *Runner) Name() string { return r.name }

// Deliver applies e, and any event of its stream between the checkpoint and e, each retried up
// to Attempts times and dead-lettered after that. It returns an error only when it could not
// read or move the checkpoint, or ctx ended: the delivery should then be retried.
func (r *Runner) Deliver(ctx context.Context, e events.Envelope) error {
	return r.deliver(ctx, e, r.opts.Attempts, true)
}

// Try applies e (and the gap before it) once, without retries or dead letters, and returns the
// handler's error. Inline projections in a request use it: when it fails, the checkpoint stays
// and the bus's delivery retries in full.
func (r *Runner) Try(ctx context.Context, e events.Envelope) error {
	return r.deliver(ctx, e, 1, false)
}

func checkpointID(consumer, stream string) string { return consumer + ":" + stream }

func (r *Runner) deliver(ctx context.Context, e events.Envelope, attempts int, deadLetter bool) error {
	// Concurrent deliveries of one stream would race on the checkpoint; on GCP, Pub/Sub ordering
	// keys serialise them instead, and idempotent handlers absorb the rest.
	defer r.lock(e.Stream)()

	if r.opts.SelfVersioned {
		if r.opts.Wants != nil && !r.opts.Wants(e) {
			return nil
		}
		return r.apply(ctx, e, attempts, deadLetter)
	}
	cp, err := Get[Checkpoint](ctx, r.docs, CheckpointsColl, checkpointID(r.name, e.Stream))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: checkpoint of %s: %w", r.name, e.Stream, err)
	}
	if e.Version <= cp.Version {
		return nil // a duplicate or a late delivery
	}
	pending := []events.Envelope{e}
	if e.Version > cp.Version+1 {
		// Delivery order is not stream order: apply what came before e first.
		loaded, err := r.events.Load(ctx, e.Stream, cp.Version+1)
		if err != nil {
			return fmt.Errorf("%s: fill %s from %d: %w", r.name, e.Stream, cp.Version+1, err)
		}
		pending = pending[:0]
		for _, l := range loaded {
			if l.Version > e.Version {
				break
			}
			if l.Version != cp.Version+int64(len(pending))+1 {
				return fmt.Errorf("%s: %s has no version %d in the store", r.name, e.Stream, cp.Version+int64(len(pending))+1)
			}
			pending = append(pending, l)
		}
		if len(pending) == 0 || pending[len(pending)-1].Version != e.Version {
			return fmt.Errorf("%s: %s@%d is not in the store yet", r.name, e.Stream, e.Version)
		}
	}
	done := cp.Version
	for _, p := range pending {
		if r.opts.Wants != nil && !r.opts.Wants(p) {
			continue
		}
		if err := r.apply(ctx, p, attempts, deadLetter); err != nil {
			return err
		}
		done = p.Version
	}
	if done < e.Version { // the last events were not for this consumer: step over them
		return r.advance(ctx, e)
	}
	return nil
}

func (r *Runner) apply(ctx context.Context, e events.Envelope, attempts int, deadLetter bool) error {
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err = r.handle(ctx, e); err == nil {
			if r.opts.SelfVersioned {
				return nil
			}
			return r.advance(ctx, e)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %s@%d: %w", r.name, e.Stream, e.Version, ctx.Err())
		}
		if attempt < attempts {
			if serr := r.opts.Sleep(ctx, r.backoff(attempt)); serr != nil {
				return fmt.Errorf("%s: %s@%d: %w", r.name, e.Stream, e.Version, serr)
			}
		}
	}
	if !deadLetter {
		return fmt.Errorf("%s: %s@%d: %w", r.name, e.Stream, e.Version, err)
	}
	dl := DeadLetter{
		Consumer: r.name, Stream: e.Stream, Version: e.Version, EventID: e.ID, Type: e.Type,
		Error: err.Error(), Attempts: attempts, Time: r.opts.Clock.Now(),
	}
	if perr := Put(ctx, r.docs, DeadLettersColl, fmt.Sprintf("%s:%s:%d", r.name, e.Stream, e.Version), dl); perr != nil {
		return fmt.Errorf("%s: dead-letter %s@%d: %w", r.name, e.Stream, e.Version, perr)
	}
	r.opts.Logger.ErrorContext(ctx, "event dead-lettered", "consumer", r.name, "stream", e.Stream,
		"version", e.Version, "event_id", e.ID, "type", e.Type, "attempts", attempts, "error", err.Error())
	if r.opts.SelfVersioned {
		return nil // no checkpoint to move: the handler's own version is the only one
	}
	return r.advance(ctx, e)
}

// advance moves the checkpoint to e's version, never backwards (another process may have moved
// it further meanwhile).
func (r *Runner) advance(ctx context.Context, e events.Envelope) error {
	err := Update(ctx, r.docs, CheckpointsColl, checkpointID(r.name, e.Stream), func(cp *Checkpoint, _ bool) (bool, error) {
		if cp.Version >= e.Version {
			return false, nil
		}
		*cp = Checkpoint{Consumer: r.name, Stream: e.Stream, Version: e.Version, UpdatedAt: r.opts.Clock.Now()}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s: checkpoint %s@%d: %w", r.name, e.Stream, e.Version, err)
	}
	return nil
}

func (r *Runner) backoff(failures int) time.Duration {
	d := r.opts.Backoff
	for i := 1; i < failures && d < r.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.opts.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lock serialises deliveries of one stream to this consumer and returns the unlock.
func (r *Runner) lock(stream string) func() {
	r.mu.Lock()
	l := r.locks[stream]
	if l == nil {
		l = &streamLock{}
		r.locks[stream] = l
	}
	l.refs++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(r.locks, stream)
		}
		r.mu.Unlock()
	}
}
