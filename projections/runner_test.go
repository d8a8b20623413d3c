package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/projections"
	docsqlite "github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// stores opens an event store and a document store over one fresh SQLite file. The runner's
// logic, not durability, is under test here, so the file lives in memory (/dev/shm) when the
// machine has it: the property test writes thousands of transactions.
func stores(t testing.TB) (*evsqlite.Store, *docsqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "runner-test-"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	db, err := sqlitedb.Open(filepath.Join(dir, "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	es, err := evsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := docsqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	return es, ds
}

type item struct {
	Key string `json:"key"`
	V   int    `json:"v"`
}

func appendItems(t testing.TB, es events.Store, stream string, items ...item) []events.Envelope {
	t.Helper()
	var in []events.Envelope
	for _, it := range items {
		e, err := events.New(ids.New(), "u", "test.item", time.Unix(1700000000, 0), it)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, e)
	}
	out, err := es.Append(context.Background(), stream, events.Any, in...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is a handler that remembers what it was given, per stream, and fails on demand.
type recorder struct {
	mu      sync.Mutex
	applied map[string][]int64
	calls   int
	fail    func(e events.Envelope, call int) error
}

func (r *recorder) handle(_ context.Context, e events.Envelope) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(e, r.calls); err != nil {
			return err
		}
	}
	if r.applied == nil {
		r.applied = map[string][]int64{}
	}
	r.applied[e.Stream] = append(r.applied[e.Stream], e.Version)
	return nil
}

func (r *recorder) versions(stream string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied[stream])
}

func checkpoint(t *testing.T, ds projections.DocStore, consumer, stream string) int64 {
	t.Helper()
	cp, err := projections.Get[projections.Checkpoint](context.Background(), ds, projections.CheckpointsColl, consumer+":"+stream)
	if errors.Is(err, projections.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return cp.Version
}

func TestRunnerSkipsDuplicatesAndFillsGaps(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1}, item{V: 2}, item{V: 3}, item{V: 4})
	var rec recorder
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{})
	ctx := context.Background()
	for _, i := range []int{0, 0, 2, 1, 0, 3, 2, 3} { // v1, v1 again, v3 (gap: v2 first), late ones
		if err := r.Deliver(ctx, evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.versions("s-1"); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("applied %v, want each version once in order", got)
	}
	if cp := checkpoint(t, ds, "proj", "s-1"); cp != 4 {
		t.Fatalf("checkpoint %d, want 4", cp)
	}
	// Checkpoints are per consumer: another consumer starts from the beginning.
	var other recorder
	r2 := projections.NewRunner("other", other.handle, es, ds, projections.RunnerOptions{})
	if err := r2.Deliver(ctx, evs[3]); err != nil {
		t.Fatal(err)
	}
	if got := other.versions("s-1"); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("second consumer applied %v", got)
	}
}

func TestRunnerRetriesWithBackoff(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1})
	rec := recorder{fail: func(_ events.Envelope, call int) error {
		if call <= 3 {
			return fmt.Errorf("transient %d", call)
		}
		return nil
	}}
	var waits []time.Duration
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{
		Attempts: 5, Backoff: 10 * time.Millisecond, MaxBackoff: 25 * time.Millisecond,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
	})
	if err := r.Deliver(context.Background(), evs[0]); err != nil {
		t.Fatal(err)
	}
	if rec.calls != 4 || !slices.Equal(rec.versions("s-1"), []int64{1}) {
		t.Fatalf("%d calls, applied %v; want 4 calls and v1 applied", rec.calls, rec.versions("s-1"))
	}
	if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond}; !slices.Equal(waits, want) {
		t.Fatalf("waited %v, want %v", waits, want)
	}
	if n, _ := ds.Count(context.Background(), projections.DeadLettersColl); n != 0 {
		t.Fatalf("%d dead letters after a success", n)
	}
}

func TestRunnerDeadLettersPoisonEvent(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1}, item{V: 2}, item{V: 3})
	rec := recorder{fail: func(e events.Envelope, _ int) error {
		if e.Version == 2 {
			return errors.New("poison")
		}
		return nil
	}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{
		Attempts: 3, Clock: clock.NewFake(at),
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
	ctx := context.Background()
	if err := r.Deliver(ctx, evs[2]); err != nil { // fills v1, v2 (poison), then v3
		t.Fatal(err)
	}
	if got := rec.versions("s-1"); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("applied %v, want 1 and 3 (2 dead-lettered)", got)
	}
	if rec.calls != 1+3+1 {
		t.Fatalf("%d handler calls, want 5 (v2 tried 3 times)", rec.calls)
	}
	dl, err := projections.Get[projections.DeadLetter](ctx, ds, projections.DeadLettersColl, "proj:s-1:2")
	if err != nil {
		t.Fatal(err)
	}
	want := projections.DeadLetter{Consumer: "proj", Stream: "s-1", Version: 2, EventID: evs[1].ID, Type: "test.item", Error: "poison", Attempts: 3, Time: at}
	if !reflect.DeepEqual(dl, want) {
		t.Fatalf("dead letter %+v, want %+v", dl, want)
	}
	if cp := checkpoint(t, ds, "proj", "s-1"); cp != 3 {
		t.Fatalf("checkpoint %d, want 3: the stream moved on", cp)
	}
	// A redelivery of the poison event is now a no-op.
	if err := r.Deliver(ctx, evs[1]); err != nil || rec.calls != 5 {
		t.Fatalf("redelivery of a dead-lettered event: %v, %d calls", err, rec.calls)
	}
}

func TestRunnerTryLeavesCheckpointOnFailure(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1}, item{V: 2})
	failing := true
	rec := recorder{fail: func(e events.Envelope, _ int) error {
		if failing && e.Version == 2 {
			return errors.New("not now")
		}
		return nil
	}}
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{Sleep: func(context.Context, time.Duration) error {
		t.Fatal("Try must not retry")
		return nil
	}})
	ctx := context.Background()
	if err := r.Try(ctx, evs[1]); err == nil {
		t.Fatal("Try hid the handler's error")
	}
	if cp := checkpoint(t, ds, "proj", "s-1"); cp != 1 {
		t.Fatalf("checkpoint %d after v1 applied and v2 failed, want 1", cp)
	}
	if n, _ := ds.Count(ctx, projections.DeadLettersColl); n != 0 {
		t.Fatal("Try dead-lettered")
	}
	failing = false
	if err := r.Deliver(ctx, evs[1]); err != nil {
		t.Fatal(err)
	}
	if got := rec.versions("s-1"); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("applied %v", got)
	}
}

func TestRunnerCancelledDuringBackoffDoesNotDeadLetter(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{V: 1})
	rec := recorder{fail: func(events.Envelope, int) error { return errors.New("down") }}
	ctx, cancel := context.WithCancel(context.Background())
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{Attempts: 10, Backoff: time.Hour})
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if err := r.Deliver(ctx, evs[0]); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if n, _ := ds.Count(context.Background(), projections.DeadLettersColl); n != 0 || checkpoint(t, ds, "proj", "s-1") != 0 {
		t.Fatal("a cancelled delivery dead-lettered or moved the checkpoint")
	}
}

func TestRunnerSerialisesAStream(t *testing.T) {
	es, ds := stores(t)
	var evs []events.Envelope
	for _, s := range []string{"a", "b"} {
		evs = append(evs, appendItems(t, es, s, make([]item, 20)...)...)
	}
	var inflight sync.Map // stream -> *atomic.Int32
	var overlap, parallel atomic.Bool
	var active atomic.Int32
	var mu sync.Mutex
	applied := map[string][]int64{}
	handle := func(_ context.Context, e events.Envelope) error {
		c, _ := inflight.LoadOrStore(e.Stream, new(atomic.Int32))
		if c.(*atomic.Int32).Add(1) > 1 {
			overlap.Store(true)
		}
		if active.Add(1) > 1 {
			parallel.Store(true)
		}
		time.Sleep(time.Millisecond)
		active.Add(-1)
		c.(*atomic.Int32).Add(-1)
		mu.Lock()
		applied[e.Stream] = append(applied[e.Stream], e.Version)
		mu.Unlock()
		return nil
	}
	r := projections.NewRunner("proj", handle, es, ds, projections.RunnerOptions{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(evs); i += 8 {
				if err := r.Deliver(context.Background(), evs[len(evs)-1-i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("two deliveries of one stream ran at once")
	}
	if !parallel.Load() {
		t.Log("note: the two streams never ran at once in this run")
	}
	for _, s := range []string{"a", "b"} {
		want := make([]int64, 20)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(applied[s], want) {
			t.Fatalf("stream %s applied %v", s, applied[s])
		}
	}
}

// The property: whatever the duplicates, the order and the concurrency of the deliveries, and
// whatever transient failures the handler meets, the read model ends identical to the one an
// in-order, exactly-once delivery builds.

// project is a deliberately non-idempotent projector (it appends and adds), so that a double
// application or a misordering shows in the read model: only the runner protects it.
func project(ctx context.Context, ds projections.DocStore, e events.Envelope) error {
	var it item
	if err := e.Decode(&it); err != nil {
		return err
	}
	type streamDoc struct {
		Seq  []int `json:"seq"`
		Last int   `json:"last"`
	}
	type totalDoc struct {
		Sum   int `json:"sum"`
		Count int `json:"count"`
	}
	if err := projections.Update(ctx, ds, "model", e.Stream, func(d *streamDoc, _ bool) (bool, error) {
		d.Seq = append(d.Seq, it.V)
		d.Last = it.V
		return true, nil
	}); err != nil {
		return err
	}
	return projections.Update(ctx, ds, "totals", it.Key, func(d *totalDoc, _ bool) (bool, error) {
		d.Sum += it.V
		d.Count++
		return true, nil
	})
}

// dump lists every read-model document, in (collection, id) order.
func dump(t *testing.T, ds projections.DocStore) []string {
	t.Helper()
	var out []string
	for _, c := range []string{"model", "totals"} {
		p, err := ds.Query(context.Background(), c, projections.Query{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Docs {
			var v any
			json.Unmarshal(d, &v)
			b, _ := json.Marshal(v)
			out = append(out, c+" "+string(b))
		}
	}
	return out
}

func TestRunnerPropertyAnyDeliveryBuildsTheSameReadModel(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			es, ds := stores(t)
			// A random history: a few streams, random lengths, values and keys.
			var history []events.Envelope
			for s := range 1 + rng.IntN(5) {
				n := 1 + rng.IntN(15)
				items := make([]item, n)
				for i := range items {
					items[i] = item{Key: fmt.Sprint("k", rng.IntN(3)), V: rng.IntN(1000)}
				}
				history = append(history, appendItems(t, es, fmt.Sprint("s-", s), items...)...)
			}

			// Reference: in order, exactly once, straight into the projector.
			_, ref := stores(t)
			for _, e := range history {
				if err := project(context.Background(), ref, e); err != nil {
					t.Fatal(err)
				}
			}

			// Deliveries: every event 1 to 3 times, shuffled, by several goroutines at once, and
			// the handler failing transiently (before writing anything) now and then.
			var deliveries []events.Envelope
			for _, e := range history {
				for range 1 + rng.IntN(3) {
					deliveries = append(deliveries, e)
				}
			}
			rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
			failures := map[string]int{} // event id -> transient failures left
			for _, e := range history {
				if rng.IntN(4) == 0 {
					failures[e.ID] = 1 + rng.IntN(2)
				}
			}
			var fmu sync.Mutex
			handle := func(ctx context.Context, e events.Envelope) error {
				fmu.Lock()
				left := failures[e.ID]
				if left > 0 {
					failures[e.ID] = left - 1
				}
				fmu.Unlock()
				if left > 0 {
					return errors.New("transient")
				}
				return project(ctx, ds, e)
			}
			r := projections.NewRunner("proj", handle, es, ds, projections.RunnerOptions{
				Attempts: 3, Sleep: func(context.Context, time.Duration) error { return nil },
			})
			workers := 1 + rng.IntN(4)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < len(deliveries); i += workers {
						if err := r.Deliver(context.Background(), deliveries[i]); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()

			if got, want := dump(t, ds), dump(t, ref); !reflect.DeepEqual(got, want) {
				t.Fatalf("read model after %d shuffled deliveries by %d workers:\n%v\nwant (in order):\n%v", len(deliveries), workers, got, want)
			}
			if n, _ := ds.Count(context.Background(), projections.DeadLettersColl); n != 0 {
				t.Fatalf("%d dead letters", n)
			}
		})
	}
}

func TestRunnerGapFillSkipsEventsTheConsumerDoesNotWant(t *testing.T) {
	es, ds := stores(t)
	evs := appendItems(t, es, "s-1", item{Key: "want"}, item{Key: "other"}, item{Key: "want"}, item{Key: "other"})
	var rec recorder
	wants := func(e events.Envelope) bool {
		var it item
		return e.Decode(&it) == nil && it.Key == "want"
	}
	r := projections.NewRunner("proj", rec.handle, es, ds, projections.RunnerOptions{Wants: wants})
	if err := r.Deliver(context.Background(), evs[2]); err != nil {
		t.Fatal(err)
	}
	if got := rec.versions("s-1"); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("applied %v, want only the wanted 1 and 3", got)
	}
	if cp := checkpoint(t, ds, "proj", "s-1"); cp != 3 {
		t.Fatalf("checkpoint %d, want 3", cp)
	}
}
