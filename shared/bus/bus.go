// Package bus is the embedded default's event bus: an in-process dispatcher that hands each
// event appended in this process (Publish) to every consumer that wants it. It is also the
// outbox relay of the embedded default: it reads the SQLite event store's outbox when it starts
// and on a poll, so whatever is unpublished (a crash between commit and publish, events appended
// by another process on the same data dir) is delivered like the rest. On GCP, Pub/Sub plays
// this part.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/codeset/codeset/events"
)

// Consumer is one destination of the bus. Deliver is usually a projections.Runner's Deliver: it
// returns an error only when the delivery must be tried again (the runner already retried the
// handler and dead-lettered a poison event).
type Consumer struct {
	Name    string
	Wants   func(events.Envelope) bool // nil: every event
	Deliver func(ctx context.Context, e events.Envelope) error
}

// Options tune the dispatcher. Zero values take the defaults.
type Options struct {
	Batch       int           // new events read from the outbox per pass; default 256
	MaxInflight int           // events handed out but not yet published before reading pauses; default 10,000
	Poll        time.Duration // outbox read interval without a wake-up (appends by other processes); default 1s
	MarkDelay   time.Duration // how long handled events wait to be marked published together; default 10ms
	Backoff     time.Duration // first delay before redelivering after a Deliver error; default 100ms
	MaxBackoff  time.Duration // default 30s
	Logger      *slog.Logger  // default slog.Default()
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 10000
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.MarkDelay <= 0 {
		o.MarkDelay = 10 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Dispatcher delivers the outbox to the consumers: in stream order for each (consumer, stream),
// concurrently across streams and across consumers, so a consumer busy for half an hour on one
// stream holds back nothing else. An event is marked published once every consumer that wants
// it has handled it (or dead-lettered it); until then it stays in the outbox, and a restart
// delivers it again (consumers skip what their checkpoint already covers).
type Dispatcher struct {
	store     events.Store
	consumers []Consumer
	opts      Options
	wake      chan struct{}

	mu        sync.Mutex
	completed []eventKey        // deliveries finished since the loop last looked
	published []events.Envelope // handed to Publish since the loop last looked
	overflow  bool              // Publish dropped events: the loop must read the outbox
	notify    chan struct{}
}

var _ events.Publisher = (*Dispatcher)(nil)

// New returns a dispatcher over store's outbox. It does nothing until Run.
func New(store events.Store, consumers []Consumer, opts Options) *Dispatcher {
	return &Dispatcher{
		store: store, consumers: consumers, opts: opts.withDefaults(),
		wake: make(chan struct{}, 1), notify: make(chan struct{}, 1),
	}
}

// Publish hands the dispatcher events just committed to the outbox. It dispatches them as they
// are, without reading them back from the store: that read, once per append, cost more than
// delivering the event. The outbox stays the truth: past MaxInflight published events waiting,
// Publish keeps only a note to read it, and the poll reads it anyway.
func (d *Dispatcher) Publish(_ context.Context, evs ...events.Envelope) error {
	d.mu.Lock()
	if len(d.published)+len(evs) <= d.opts.MaxInflight {
		d.published = append(d.published, evs...)
	} else {
		d.overflow = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

type eventKey struct {
	stream  string
	version int64
}

// lane is the ordered queue of one (consumer, stream): one goroutine at most drains it.
type lane struct {
	consumer *Consumer
	mu       sync.Mutex
	queue    []events.Envelope
	running  bool
}

// run is the loop's state; only the Run goroutine touches it.
type run struct {
	d        *Dispatcher
	ctx      context.Context
	lanes    map[string]*lane            // consumer name + "\x00" + stream
	inflight map[eventKey]*inflightEvent // handed out, not yet marked published
	toMark   []events.Envelope
	wg       sync.WaitGroup
}

type inflightEvent struct {
	e       events.Envelope
	pending int // consumers still to handle it
}

// Run delivers until ctx ends, then waits for the deliveries under way to stop (consumers get
// the cancelled context) and marks what they finished. It returns nil on a clean shutdown.
func (d *Dispatcher) Run(ctx context.Context) error {
	r := &run{d: d, ctx: ctx, lanes: map[string]*lane{}, inflight: map[eventKey]*inflightEvent{}}
	defer r.shutdown()
	tick := time.NewTicker(d.opts.Poll)
	defer tick.Stop()
	// Handled events are marked published together, MarkDelay after the first of them: one
	// write for the several events of a burst (an exec's request, claim and result) rather than
	// one each. A mark lost in a crash only means a redelivery.
	markTimer := time.NewTimer(time.Hour)
	markTimer.Stop()
	defer markTimer.Stop()
	marking := false
	markSoon := func() {
		if len(r.toMark) >= d.opts.Batch {
			r.mark()
		}
		if len(r.toMark) > 0 && !marking {
			marking = true
			markTimer.Reset(d.opts.MarkDelay)
		}
	}
	read := true // at start: pick up everything left unpublished
	for {
		if read && len(r.inflight) < d.opts.MaxInflight {
			more, err := r.read()
			if err != nil {
				d.opts.Logger.Warn("bus: reading the outbox failed; retrying", "error", err.Error())
			}
			read = more
			if more {
				// A full page: there may be more right behind it; collect completions first so
				// the outbox shrinks, then read again without waiting.
				r.collect()
				r.mark()
				continue
			}
			// Events nobody wants were queued for marking by the read itself: no delivery will
			// wake the loop for them.
			markSoon()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			if r.takePublished() {
				read = true
			}
		case <-tick.C:
			read = true
		case <-d.notify:
		case <-markTimer.C:
			marking = false
			r.collect()
			r.mark()
		}
		r.collect()
		markSoon()
	}
}

// takePublished dispatches the events handed to Publish that are not in flight yet, and
// reports whether the outbox must be read because some were not kept.
func (r *run) takePublished() bool {
	r.d.mu.Lock()
	evs, overflow := r.d.published, r.d.overflow
	r.d.published, r.d.overflow = nil, false
	r.d.mu.Unlock()
	for _, e := range evs {
		if _, ok := r.inflight[eventKey{e.Stream, e.Version}]; !ok {
			r.dispatch(e)
		}
	}
	return overflow
}

// read hands out the outbox's events not yet in flight and reports whether the page was full.
func (r *run) read() (bool, error) {
	limit := len(r.inflight) + r.d.opts.Batch // toMark is a subset of inflight
	evs, err := r.d.store.Unpublished(r.ctx, limit)
	if err != nil {
		return false, fmt.Errorf("unpublished: %w", err)
	}
	for _, e := range evs {
		if _, ok := r.inflight[eventKey{e.Stream, e.Version}]; ok {
			continue
		}
		r.dispatch(e)
	}
	return len(evs) == limit, nil
}

func (r *run) dispatch(e events.Envelope) {
	k := eventKey{e.Stream, e.Version}
	in := &inflightEvent{e: e}
	r.inflight[k] = in
	for i := range r.d.consumers {
		c := &r.d.consumers[i]
		if c.Wants != nil && !c.Wants(e) {
			continue
		}
		in.pending++
		name := c.Name + "\x00" + e.Stream
		l := r.lanes[name]
		if l == nil {
			l = &lane{consumer: c}
			r.lanes[name] = l
		}
		l.mu.Lock()
		l.queue = append(l.queue, e)
		if !l.running {
			l.running = true
			r.wg.Add(1)
			go r.drain(l)
		}
		l.mu.Unlock()
	}
	if in.pending == 0 { // nobody wants it: published as soon as it is seen
		r.toMark = append(r.toMark, e)
	}
}

// drain delivers a lane's queue in order until it is empty.
func (r *run) drain(l *lane) {
	defer r.wg.Done()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 || r.ctx.Err() != nil {
			l.running = false
			l.mu.Unlock()
			return
		}
		e := l.queue[0]
		l.mu.Unlock()
		if !r.deliver(l.consumer, e) {
			l.mu.Lock()
			l.running = false
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		l.queue = l.queue[1:]
		l.mu.Unlock()
		r.d.done(eventKey{e.Stream, e.Version})
	}
}

// deliver hands e to c until it succeeds; false when ctx ended first.
func (r *run) deliver(c *Consumer, e events.Envelope) bool {
	wait := r.d.opts.Backoff
	for {
		err := c.Deliver(r.ctx, e)
		if err == nil {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		r.d.opts.Logger.Warn("bus: delivery failed; retrying", "consumer", c.Name, "stream", e.Stream,
			"version", e.Version, "retry_in", wait.String(), "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, r.d.opts.MaxBackoff)
	}
}

func (d *Dispatcher) done(k eventKey) {
	d.mu.Lock()
	d.completed = append(d.completed, k)
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// collect counts finished deliveries down and queues fully handled events for marking.
func (r *run) collect() {
	r.d.mu.Lock()
	done := r.d.completed
	r.d.completed = nil
	r.d.mu.Unlock()
	for _, k := range done {
		in := r.inflight[k]
		if in == nil {
			continue
		}
		if in.pending--; in.pending == 0 {
			r.toMark = append(r.toMark, in.e)
		}
	}
	// Forget idle lanes, so the map does not grow with every stream ever seen.
	for name, l := range r.lanes {
		l.mu.Lock()
		idle := !l.running && len(l.queue) == 0
		l.mu.Unlock()
		if idle {
			delete(r.lanes, name)
		}
	}
}

// mark marks the fully handled events published; on failure they stay queued for the next pass.
func (r *run) mark() {
	if len(r.toMark) == 0 {
		return
	}
	ctx := r.ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	if err := r.d.store.MarkPublished(ctx, r.toMark...); err != nil {
		r.d.opts.Logger.Warn("bus: marking events published failed; retrying", "events", len(r.toMark), "error", err.Error())
		return
	}
	for _, e := range r.toMark {
		delete(r.inflight, eventKey{e.Stream, e.Version})
	}
	r.toMark = r.toMark[:0]
}

// shutdown waits for the lanes to stop and records what they finished.
func (r *run) shutdown() {
	r.wg.Wait()
	r.collect()
	r.mark()
}
