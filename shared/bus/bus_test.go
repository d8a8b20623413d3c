package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/shared/bus"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sqlitedb"
)

func openStore(t testing.TB, path string) *evsqlite.Store {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := evsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEvent(t testing.TB, typ string) events.Envelope {
	t.Helper()
	e, err := events.New(ids.New(), "u", typ, time.Now(), map[string]string{"x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// journal records what each consumer received, per stream, in arrival order.
type journal struct {
	mu  sync.Mutex
	got map[string]map[string][]int64 // consumer -> stream -> versions
}

func (j *journal) add(consumer string, e events.Envelope) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.got == nil {
		j.got = map[string]map[string][]int64{}
	}
	if j.got[consumer] == nil {
		j.got[consumer] = map[string][]int64{}
	}
	j.got[consumer][e.Stream] = append(j.got[consumer][e.Stream], e.Version)
}

func (j *journal) versions(consumer, stream string) []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.got[consumer][stream])
}

func (j *journal) recorder(name string) func(context.Context, events.Envelope) error {
	return func(_ context.Context, e events.Envelope) error { j.add(name, e); return nil }
}

// runBus runs d until the test ends and checks that it shuts down cleanly.
func runBus(t *testing.T, d *bus.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func outboxEmpty(t *testing.T, s events.Store) func() bool {
	return func() bool {
		evs, err := s.Unpublished(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs) == 0
	}
}

func seq(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func TestDeliversEachEventOnceInStreamOrder(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	var j journal
	onlyB := func(e events.Envelope) bool { return e.Type == "test.b" }
	d := bus.New(s, []bus.Consumer{
		{Name: "all", Deliver: j.recorder("all")},
		{Name: "also", Deliver: j.recorder("also")},
		{Name: "onlyb", Wants: onlyB, Deliver: j.recorder("onlyb")},
	}, bus.Options{Poll: time.Hour, Batch: 7, Logger: quiet}) // Poll: only Publish wakes it
	log := &outbox{store: s, pub: d}
	runBus(t, d)

	const streams, perStream = 12, 15
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			for v := range perStream {
				typ := "test.a"
				if v%3 == 0 {
					typ = "test.b"
				}
				if _, err := log.Append(context.Background(), fmt.Sprint("s-", i), int64(v), newEvent(t, typ)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "the outbox to empty", outboxEmpty(t, s))
	for i := range streams {
		st := fmt.Sprint("s-", i)
		for _, c := range []string{"all", "also"} {
			if got := j.versions(c, st); !slices.Equal(got, seq(perStream)) {
				t.Fatalf("%s got %s versions %v, want each once in order", c, st, got)
			}
		}
		if got := j.versions("onlyb", st); !slices.Equal(got, []int64{1, 4, 7, 10, 13}) {
			t.Fatalf("onlyb got %s versions %v, want the test.b events only", st, got)
		}
	}
}

func TestPicksUpTheOutboxAtStart(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	for i := range 3 {
		for v := range 4 {
			if _, err := s.Append(context.Background(), fmt.Sprint("s-", i), int64(v), newEvent(t, "test.a")); err != nil {
				t.Fatal(err)
			}
		}
	}
	var j journal
	d := bus.New(s, []bus.Consumer{{Name: "c", Deliver: j.recorder("c")}}, bus.Options{Poll: time.Hour, Logger: quiet})
	runBus(t, d)
	waitFor(t, "the outbox to empty", outboxEmpty(t, s))
	for i := range 3 {
		if got := j.versions("c", fmt.Sprint("s-", i)); !slices.Equal(got, seq(4)) {
			t.Fatalf("stream %d: %v", i, got)
		}
	}
}

func TestPollsForEventsOfOtherProcesses(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	var j journal
	d := bus.New(s, []bus.Consumer{{Name: "c", Deliver: j.recorder("c")}}, bus.Options{Poll: 20 * time.Millisecond, Logger: quiet})
	runBus(t, d)
	// Appended without Publish, as another process on the same file does.
	if _, err := s.Append(context.Background(), "s", 0, newEvent(t, "test.a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poll to deliver", func() bool { return len(j.versions("c", "s")) == 1 })
}

func TestSlowConsumerBlocksOnlyItsOwnStream(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	var j journal
	release := make(chan struct{})
	slow := func(ctx context.Context, e events.Envelope) error {
		if e.Stream == "held" {
			select { // a 30-minute command, as far as the test can tell
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		j.add("slow", e)
		return nil
	}
	d := bus.New(s, []bus.Consumer{
		{Name: "slow", Deliver: slow},
		{Name: "fast", Deliver: j.recorder("fast")},
	}, bus.Options{Poll: time.Hour, Logger: quiet})
	log := &outbox{store: s, pub: d}
	runBus(t, d)
	ctx := context.Background()
	for v := range 3 {
		if _, err := log.Append(ctx, "held", int64(v), newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	for v := range 5 {
		if _, err := log.Append(ctx, "free", int64(v), newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the other consumer and the other stream", func() bool {
		return slices.Equal(j.versions("fast", "held"), seq(3)) && slices.Equal(j.versions("fast", "free"), seq(5)) &&
			slices.Equal(j.versions("slow", "free"), seq(5))
	})
	if got := j.versions("slow", "held"); len(got) != 0 {
		t.Fatalf("slow consumer finished %v on the held stream before release", got)
	}
	// Only the free stream may be marked published: the held one waits for its slow consumer.
	time.Sleep(50 * time.Millisecond)
	left, err := s.Unpublished(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if e.Stream != "held" {
			t.Fatalf("%s@%d still unpublished after every consumer handled it", e.Stream, e.Version)
		}
	}
	if len(left) != 3 {
		t.Fatalf("%d events unpublished, want the 3 held ones", len(left))
	}
	close(release)
	waitFor(t, "the outbox to empty", outboxEmpty(t, s))
	if got := j.versions("slow", "held"); !slices.Equal(got, seq(3)) {
		t.Fatalf("slow consumer got held %v", got)
	}
}

func TestRedeliversAfterAnErrorKeepingOrder(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	var j journal
	fails := 2
	var mu sync.Mutex
	flaky := func(_ context.Context, e events.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		if e.Version == 2 && fails > 0 {
			fails--
			return errors.New("checkpoint store unavailable")
		}
		j.add("flaky", e)
		return nil
	}
	d := bus.New(s, []bus.Consumer{{Name: "flaky", Deliver: flaky}}, bus.Options{Poll: time.Hour, Backoff: time.Millisecond, Logger: quiet})
	log := &outbox{store: s, pub: d}
	runBus(t, d)
	for v := range 4 {
		if _, err := log.Append(context.Background(), "s", int64(v), newEvent(t, "test.a")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the outbox to empty", outboxEmpty(t, s))
	if got := j.versions("flaky", "s"); !slices.Equal(got, seq(4)) {
		t.Fatalf("got %v, want 1..4 once each in order", got)
	}
}

func TestShutdownStopsBlockedDeliveriesAndKeepsThemUnpublished(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	started := make(chan struct{}, 10)
	blocked := func(ctx context.Context, e events.Envelope) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	d := bus.New(s, []bus.Consumer{{Name: "blocked", Deliver: blocked}}, bus.Options{Poll: time.Hour, Logger: quiet})
	log := &outbox{store: s, pub: d}
	stop := runBus(t, d)
	if _, err := log.Append(context.Background(), "s", 0, newEvent(t, "test.a")); err != nil {
		t.Fatal(err)
	}
	<-started
	stop()
	left, err := s.Unpublished(context.Background(), 10)
	if err != nil || len(left) != 1 {
		t.Fatalf("after a shutdown mid-delivery: %d unpublished (%v), want 1 left for the next start", len(left), err)
	}
}

func TestEventsNobodyWantsArePublishedToo(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "bus.db"))
	var j journal
	d := bus.New(s, []bus.Consumer{{Name: "onlyb", Wants: func(e events.Envelope) bool { return e.Type == "test.b" }, Deliver: j.recorder("onlyb")}},
		bus.Options{Poll: time.Hour, Logger: quiet})
	log := &outbox{store: s, pub: d}
	runBus(t, d)
	for v, typ := range []string{"test.a", "test.b", "test.a"} {
		if _, err := log.Append(context.Background(), "s", int64(v), newEvent(t, typ)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the outbox to empty", outboxEmpty(t, s))
	if got := j.versions("onlyb", "s"); !slices.Equal(got, []int64{2}) {
		t.Fatalf("onlyb got %v, want only version 2", got)
	}
}

// outbox appends as the write path does, for the dispatcher's tests: append (stored
// unpublished), then publish what was stored.
type outbox struct {
	store events.Store
	pub   events.Publisher
}

func (o *outbox) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	stored, err := o.store.Append(ctx, stream, expected, evs...)
	if err != nil {
		return nil, err
	}
	return stored, o.pub.Publish(context.WithoutCancel(ctx), stored...)
}
