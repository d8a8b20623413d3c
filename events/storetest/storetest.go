// Package storetest is the contract suite of events.Store. An adapter is correct when it passes
// it: events/sqlite runs it in its tests, events/firestore runs it against the emulator with a
// bounded number of concurrent appenders (Options), because the emulator handles contending
// transactions badly.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/ids"
)

// Options says what the adapter under test promises and how hard to push it.
type Options struct {
	// Appenders is K, the number of goroutines racing to append at the same expected version
	// (and to distinct streams at once). Default 16.
	Appenders int
	// Serial runs the tests one after the other instead of in parallel (t.Parallel), for a
	// backend that cannot take the load of every test at once.
	Serial bool
}

func (o Options) withDefaults() Options {
	if o.Appenders <= 0 {
		o.Appenders = 16
	}
	return o
}

// UpcastType is the test-only event type whose schema 1 the suite stores and expects to read
// back upcast to schema 2 (its "n" field renamed "count").
const UpcastType = "storetest.upcast"

var registerOnce sync.Once

func registerUpcaster() {
	registerOnce.Do(func() {
		events.RegisterUpcaster(UpcastType, 1, func(raw json.RawMessage) (json.RawMessage, error) {
			var v1 struct {
				N int `json:"n"`
			}
			if err := json.Unmarshal(raw, &v1); err != nil {
				return nil, err
			}
			return json.Marshal(map[string]int{"count": v1.N})
		})
	})
}

// Run runs every test of the contract against stores made by newStore. newStore is called once
// per test; the tests use fresh stream names, so it may return a shared store too.
func Run(t *testing.T, opts Options, newStore func(t *testing.T) events.Store) {
	opts = opts.withDefaults()
	registerUpcaster()
	tests := []struct {
		name string
		fn   func(t *testing.T, s events.Store, o Options)
	}{
		{"AppendAssignsVersions", testAppendAssignsVersions},
		{"EnvelopeRoundTrip", testEnvelopeRoundTrip},
		{"WrongVersionWritesNothing", testWrongVersion},
		{"AppendAnyAtHead", testAppendAny},
		{"ConcurrentAppendersOneWins", testConcurrentOneWins},
		{"ConcurrentAppendersDistinctStreams", testConcurrentDistinctStreams},
		{"ConcurrentAppendAnyContiguous", testConcurrentAny},
		{"RetrySameEventsIsIdempotent", testRetryIdempotent},
		{"SameIDOtherDataRejected", testIDConflict},
		{"BatchWithStoredIDElsewhereRejected", testBatchPartialConflict},
		{"LoadFromVersion", testLoadFrom},
		{"UpcastOnRead", testUpcast},
		{"AppendWithoutSync", testAppendWithoutSync},
		{"Outbox", testOutbox},
		{"ScanByPrefix", testScan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !opts.Serial {
				t.Parallel()
			}
			tc.fn(t, newStore(t), opts)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// stream returns a stream name no other test (or earlier run on a shared backend) uses.
func stream(kind string) string { return kind + "-" + ids.New() }

var at = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func ev(t *testing.T, typ string, data any) events.Envelope {
	t.Helper()
	e, err := events.New(ids.New(), "user-1", typ, at, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func evs(t *testing.T, n int) []events.Envelope {
	t.Helper()
	out := make([]events.Envelope, n)
	for i := range out {
		out[i] = ev(t, "storetest.happened", map[string]any{"i": i, "note": fmt.Sprintf("event %d", i)})
	}
	return out
}

func load(t *testing.T, s events.Store, st string) []events.Envelope {
	t.Helper()
	got, err := s.Load(ctx(t), st, 1)
	if err != nil {
		t.Fatalf("load %s: %v", st, err)
	}
	return got
}

func version(t *testing.T, s events.Store, st string) int64 {
	t.Helper()
	v, err := s.Version(ctx(t), st)
	if err != nil {
		t.Fatalf("version %s: %v", st, err)
	}
	return v
}

func mustAppend(t *testing.T, s events.Store, st string, expected int64, es ...events.Envelope) []events.Envelope {
	t.Helper()
	out, err := s.Append(ctx(t), st, expected, es...)
	if err != nil {
		t.Fatalf("append %s@%d: %v", st, expected, err)
	}
	return out
}

func ids_(es []events.Envelope) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func sameEnvelope(a, b events.Envelope) bool {
	return a.SameContent(b) && a.Version == b.Version
}

func testAppendAssignsVersions(t *testing.T, s events.Store, _ Options) {
	st := stream("ver")
	if v := version(t, s, st); v != 0 {
		t.Fatalf("version of an empty stream = %d, want 0", v)
	}
	if got := load(t, s, st); len(got) != 0 {
		t.Fatalf("load of an empty stream = %d events", len(got))
	}
	first := mustAppend(t, s, st, 0, evs(t, 3)...)
	second := mustAppend(t, s, st, 3, evs(t, 2)...)
	for i, e := range append(first, second...) {
		if e.Version != int64(i+1) || e.Stream != st {
			t.Fatalf("event %d stored as %s@%d, want %s@%d", i, e.Stream, e.Version, st, i+1)
		}
	}
	if v := version(t, s, st); v != 5 {
		t.Fatalf("version = %d, want 5", v)
	}
	if got := load(t, s, st); len(got) != 5 {
		t.Fatalf("load = %d events, want 5", len(got))
	}
}

func testEnvelopeRoundTrip(t *testing.T, s events.Store, _ Options) {
	st := stream("rt")
	in := events.Envelope{
		ID: ids.New(), Type: "storetest.round_trip", SchemaVersion: 3,
		OccurredAt: time.Date(2025, 12, 31, 23, 59, 58, 999999000, time.FixedZone("X", 3600)),
		UserID:     "user-" + ids.New(),
		Data:       json.RawMessage(`{"s":"héllo \"x\"","n":42,"f":1.5,"b":true,"nil":null,"list":[1,2,3],"obj":{"k":"v"}}`),
	}
	stored := mustAppend(t, s, st, 0, in)
	got := load(t, s, st)
	if len(got) != 1 || len(stored) != 1 {
		t.Fatalf("stored %d, loaded %d, want 1 and 1", len(stored), len(got))
	}
	for name, e := range map[string]events.Envelope{"returned": stored[0], "loaded": got[0]} {
		if e.ID != in.ID || e.Stream != st || e.Version != 1 || e.Type != in.Type || e.SchemaVersion != 3 || e.UserID != in.UserID {
			t.Errorf("%s envelope %+v, want id %s stream %s version 1 type %s schema 3 user %s", name, e, in.ID, st, in.Type, in.UserID)
		}
		if !e.OccurredAt.Equal(in.OccurredAt) {
			t.Errorf("%s occurred_at %v, want %v", name, e.OccurredAt, in.OccurredAt)
		}
		var a, b any
		if err := json.Unmarshal(e.Data, &a); err != nil {
			t.Fatalf("%s data %q: %v", name, e.Data, err)
		}
		json.Unmarshal(in.Data, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s data %s, want %s", name, ja, jb)
		}
	}
}

func testWrongVersion(t *testing.T, s events.Store, _ Options) {
	st := stream("wrong")
	mustAppend(t, s, st, 0, evs(t, 2)...)
	for _, expected := range []int64{0, 1, 3, 10} {
		_, err := s.Append(ctx(t), st, expected, evs(t, 3)...)
		if !errors.Is(err, events.ErrConcurrency) {
			t.Fatalf("append at %d to a stream at 2: err %v, want ErrConcurrency", expected, err)
		}
	}
	if got := load(t, s, st); len(got) != 2 {
		t.Fatalf("after rejected appends the stream has %d events, want 2", len(got))
	}
	// Nothing of a rejected batch is visible anywhere else either.
	if _, err := s.Append(ctx(t), stream("wrong"), 5, evs(t, 1)...); !errors.Is(err, events.ErrConcurrency) {
		t.Fatalf("append at 5 to an empty stream: err %v, want ErrConcurrency", err)
	}
}

// An append that waives its own flush is an append like any other: versions, checks, the
// outbox, reads.
func testAppendWithoutSync(t *testing.T, s events.Store, _ Options) {
	st := stream("nosync")
	relaxed := events.WithoutSync(ctx(t))
	mustAppend(t, s, st, 0, evs(t, 2)...)
	if _, err := s.Append(relaxed, st, 0, evs(t, 1)...); !errors.Is(err, events.ErrConcurrency) {
		t.Fatalf("append without sync at a wrong version: %v, want ErrConcurrency", err)
	}
	stored, err := s.Append(relaxed, st, 2, evs(t, 1)...)
	if err != nil || len(stored) != 1 || stored[0].Version != 3 {
		t.Fatalf("append without sync: %v %+v, want version 3", err, stored)
	}
	mustAppend(t, s, st, 3, evs(t, 1)...)
	if got := load(t, s, st); len(got) != 4 || got[2].ID != stored[0].ID {
		t.Fatalf("loaded %d events, want 4 with the unsynced one third", len(got))
	}
}

func testAppendAny(t *testing.T, s events.Store, _ Options) {
	st := stream("any")
	mustAppend(t, s, st, events.Any, evs(t, 2)...)
	out := mustAppend(t, s, st, events.Any, evs(t, 1)...)
	if out[0].Version != 3 {
		t.Fatalf("append at Any on a stream at 2 stored version %d, want 3", out[0].Version)
	}
}

func testConcurrentOneWins(t *testing.T, s events.Store, o Options) {
	st := stream("race")
	mustAppend(t, s, st, 0, evs(t, 1)...)
	k := o.Appenders
	batches := make([][]events.Envelope, k)
	for i := range batches {
		batches[i] = evs(t, 2) // multi-event appends: the winner's are stored whole
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range k {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Append(ctx(t), st, 1, batches[i]...)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("appenders %d and %d both won at version 1", winner, i)
			}
			winner = i
		case !errors.Is(err, events.ErrConcurrency):
			t.Fatalf("loser %d: err %v, want ErrConcurrency", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d appenders won", k)
	}
	got := load(t, s, st)
	if len(got) != 3 || got[1].ID != batches[winner][0].ID || got[2].ID != batches[winner][1].ID {
		t.Fatalf("stream holds %v, want the first event then the winner's %v", ids_(got), ids_(batches[winner]))
	}
}

// testConcurrentDistinctStreams: appends to different streams at once do not interfere; one
// appender's wrong version, or a batch whose last event reuses a stored id, fails that appender
// only (an adapter that commits concurrent appends together must keep them apart).
func testConcurrentDistinctStreams(t *testing.T, s events.Store, o Options) {
	k := o.Appenders
	streams := make([]string, k)
	batches := make([][]events.Envelope, k)
	errs := make([]error, k)
	taken := mustAppend(t, s, stream("distinct"), 0, evs(t, 1)...)[0]
	taken.Stream, taken.Version = "", 0
	for i := range k {
		streams[i] = stream("distinct")
		batches[i] = evs(t, 1+i%3)
		if i%4 == 1 {
			batches[i] = append(evs(t, 2+i%5), taken)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range k {
		wg.Go(func() {
			<-start
			expected := int64(0)
			if i%4 == 3 {
				expected = 7 // wrong on purpose
			}
			c := ctx(t)
			if i%2 == 0 { // appends that waive their flush share groups with those that do not
				c = events.WithoutSync(c)
			}
			_, errs[i] = s.Append(c, streams[i], expected, batches[i]...)
		})
	}
	close(start)
	wg.Wait()
	for i := range k {
		got := load(t, s, streams[i])
		if i%4 == 1 {
			if !errors.Is(errs[i], events.ErrIDConflict) || len(got) != 0 {
				t.Errorf("appender %d reusing a stored id: err %v, %d events stored; want ErrIDConflict and none", i, errs[i], len(got))
			}
			continue
		}
		if i%4 == 3 {
			if !errors.Is(errs[i], events.ErrConcurrency) || len(got) != 0 {
				t.Errorf("wrong-version appender %d: err %v, %d events stored; want ErrConcurrency and none", i, errs[i], len(got))
			}
			continue
		}
		if errs[i] != nil || len(got) != len(batches[i]) {
			t.Errorf("appender %d: err %v, %d events stored; want nil and %d", i, errs[i], len(got), len(batches[i]))
		}
	}
}

func testConcurrentAny(t *testing.T, s events.Store, o Options) {
	st := stream("anyrace")
	k := o.Appenders
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		wg.Go(func() {
			for {
				_, errs[i] = s.Append(ctx(t), st, events.Any, evs(t, 1)...)
				// An adapter may report a lost race at Any as ErrConcurrency: the caller retries.
				if !errors.Is(errs[i], events.ErrConcurrency) {
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("appender %d at Any: %v", i, err)
		}
	}
	got := load(t, s, st)
	if len(got) != k {
		t.Fatalf("%d appends at Any stored %d events", k, len(got))
	}
	for i, e := range got {
		if e.Version != int64(i+1) {
			t.Fatalf("versions not contiguous: event %d has version %d", i, e.Version)
		}
	}
}

func testRetryIdempotent(t *testing.T, s events.Store, _ Options) {
	st := stream("retry")
	batch := evs(t, 3)
	first := mustAppend(t, s, st, 0, batch...)
	// The same events at the same expected version: a client retrying after a lost response.
	again, err := s.Append(ctx(t), st, 0, batch...)
	if err != nil {
		t.Fatalf("retry of the same events: %v", err)
	}
	if len(again) != 3 {
		t.Fatalf("retry returned %d events, want 3", len(again))
	}
	for i := range again {
		if !sameEnvelope(again[i], first[i]) {
			t.Fatalf("retry returned %+v, want %+v", again[i], first[i])
		}
	}
	// Still idempotent once the stream has moved on, and at Any.
	mustAppend(t, s, st, 3, evs(t, 1)...)
	for _, expected := range []int64{0, events.Any} {
		again, err = s.Append(ctx(t), st, expected, batch...)
		if err != nil || len(again) != 3 || again[2].Version != 3 {
			t.Fatalf("retry at %d after the stream moved on: %v, %+v", expected, err, again)
		}
	}
	if got := load(t, s, st); len(got) != 4 {
		t.Fatalf("stream has %d events after retries, want 4", len(got))
	}
}

func testIDConflict(t *testing.T, s events.Store, _ Options) {
	st := stream("conflict")
	stored := mustAppend(t, s, st, 0, evs(t, 1)...)
	cases := map[string]func(e events.Envelope) (string, events.Envelope){
		"other data": func(e events.Envelope) (string, events.Envelope) {
			e.Data = json.RawMessage(`{"i":99}`)
			return st, e
		},
		"other type": func(e events.Envelope) (string, events.Envelope) {
			e.Type = "storetest.other"
			return st, e
		},
		"other user": func(e events.Envelope) (string, events.Envelope) {
			e.UserID = "user-2"
			return st, e
		},
		"other stream": func(e events.Envelope) (string, events.Envelope) {
			return stream("conflict"), e
		},
	}
	for name, change := range cases {
		target, e := change(stored[0])
		e.Stream, e.Version = "", 0
		before := version(t, s, target)
		_, err := s.Append(ctx(t), target, before, e)
		if !errors.Is(err, events.ErrIDConflict) {
			t.Errorf("%s: err %v, want ErrIDConflict", name, err)
		}
		if after := version(t, s, target); after != before {
			t.Errorf("%s: the rejected append moved %s from %d to %d", name, target, before, after)
		}
	}
	if got := load(t, s, st); len(got) != 1 || !got[0].SameContent(stored[0]) {
		t.Fatalf("the stored event changed: %+v", got)
	}
}

// testBatchPartialConflict: a batch whose later event reuses a stored id is rejected whole.
func testBatchPartialConflict(t *testing.T, s events.Store, _ Options) {
	other := stream("partial")
	taken := mustAppend(t, s, other, 0, evs(t, 1)...)[0]
	st := stream("partial")
	batch := evs(t, 2)
	reuse := taken
	reuse.Stream, reuse.Version = "", 0
	batch = append(batch, reuse)
	if _, err := s.Append(ctx(t), st, 0, batch...); err == nil {
		t.Fatal("a batch reusing another stream's event id was accepted")
	}
	if got := load(t, s, st); len(got) != 0 {
		t.Fatalf("a rejected batch left %d events", len(got))
	}
	// The new events of the rejected batch are not reserved: they can be appended on their own.
	mustAppend(t, s, st, 0, batch[:2]...)
}

func testLoadFrom(t *testing.T, s events.Store, _ Options) {
	st := stream("from")
	in := mustAppend(t, s, st, 0, evs(t, 7)...)
	for _, from := range []int64{0, 1, 4, 7, 8, 100} {
		got, err := s.Load(ctx(t), st, from)
		if err != nil {
			t.Fatal(err)
		}
		want := in[min(max(from-1, 0), 7):]
		if len(got) != len(want) {
			t.Fatalf("load from %d: %d events, want %d", from, len(got), len(want))
		}
		for i := range got {
			if !sameEnvelope(got[i], want[i]) {
				t.Fatalf("load from %d: event %d is %s@%d, want %s@%d", from, i, got[i].ID, got[i].Version, want[i].ID, want[i].Version)
			}
		}
	}
}

func testUpcast(t *testing.T, s events.Store, _ Options) {
	st := stream("upcast")
	old := events.Envelope{ID: ids.New(), Type: UpcastType, SchemaVersion: 1, OccurredAt: at, UserID: "u", Data: json.RawMessage(`{"n":5}`)}
	if events.CurrentSchema(UpcastType) != 2 {
		t.Fatalf("current schema of %s = %d, want 2", UpcastType, events.CurrentSchema(UpcastType))
	}
	mustAppend(t, s, st, 0, old)
	check := func(how string, e events.Envelope) {
		t.Helper()
		var v2 struct {
			Count *int `json:"count"`
		}
		if err := json.Unmarshal(e.Data, &v2); err != nil || e.SchemaVersion != 2 || v2.Count == nil || *v2.Count != 5 {
			t.Fatalf("%s: schema %d data %s, want schema 2 {\"count\":5}", how, e.SchemaVersion, e.Data)
		}
	}
	check("load", load(t, s, st)[0])
	var scanned []events.Envelope
	if err := s.Scan(ctx(t), st, func(e events.Envelope) error { scanned = append(scanned, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(scanned) != 1 {
		t.Fatalf("scan found %d events", len(scanned))
	}
	check("scan", scanned[0])
	found := false
	for _, e := range unpublished(t, s) {
		if e.ID == old.ID {
			check("unpublished", e)
			found = true
		}
	}
	if !found {
		t.Fatal("the old-schema event is not in the outbox")
	}
	// Stored history is not rewritten: a retry of the original schema-1 event is still a retry.
	if _, err := s.Append(ctx(t), st, 0, old); err != nil {
		t.Fatalf("retry of the stored schema-1 event: %v", err)
	}
}

// unpublished reads the whole outbox (tests on a shared backend may leave other events there).
func unpublished(t *testing.T, s events.Store) []events.Envelope {
	t.Helper()
	got, err := s.Unpublished(ctx(t), 100000)
	if err != nil {
		t.Fatalf("unpublished: %v", err)
	}
	return got
}

func testOutbox(t *testing.T, s events.Store, _ Options) {
	a, b := stream("outbox"), stream("outbox")
	ea := mustAppend(t, s, a, 0, evs(t, 3)...)
	eb := mustAppend(t, s, b, 0, evs(t, 2)...)
	mine := func() map[string][]int64 {
		out := map[string][]int64{}
		for _, e := range unpublished(t, s) {
			if e.Stream == a || e.Stream == b {
				out[e.Stream] = append(out[e.Stream], e.Version)
			}
		}
		return out
	}
	if got := mine(); fmt.Sprint(got[a], got[b]) != "[1 2 3] [1 2]" {
		t.Fatalf("unpublished = %v, want every new event, each stream in version order", got)
	}
	if err := s.MarkPublished(ctx(t), ea[0], ea[1], eb[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx(t), ea[0]); err != nil {
		t.Fatalf("marking twice: %v", err)
	}
	if got := mine(); fmt.Sprint(got[a], got[b]) != "[3] [1]" {
		t.Fatalf("after marking a1 a2 b2: unpublished = %v, want a3 and b1", got)
	}
	if err := s.MarkPublished(ctx(t), ea[2], eb[0]); err != nil {
		t.Fatal(err)
	}
	if got := mine(); len(got) != 0 {
		t.Fatalf("after marking all: unpublished = %v", got)
	}
	// An idempotent retry does not put published events back in the outbox.
	if _, err := s.Append(ctx(t), a, 0, ea...); err != nil {
		t.Fatal(err)
	}
	if got := mine(); len(got) != 0 {
		t.Fatalf("a retry republished %v", got)
	}
	// The limit is honoured.
	mustAppend(t, s, a, 3, evs(t, 3)...)
	if got, err := s.Unpublished(ctx(t), 2); err != nil || len(got) != 2 {
		t.Fatalf("unpublished(2) = %d events, %v", len(got), err)
	}
}

func testScan(t *testing.T, s events.Store, _ Options) {
	prefix := "scan" + strings.ToLower(ids.New()) + "-"
	want := map[string]int{}
	for i := range 4 {
		st := fmt.Sprintf("%s%d", prefix, i)
		mustAppend(t, s, st, 0, evs(t, i+1)...)
		want[st] = i + 1
	}
	outside := "x" + prefix + "0"
	mustAppend(t, s, outside, 0, evs(t, 2)...)
	got := map[string]int{}
	last := map[string]int64{}
	err := s.Scan(ctx(t), prefix, func(e events.Envelope) error {
		if !strings.HasPrefix(e.Stream, prefix) {
			return fmt.Errorf("scan %q returned %s", prefix, e.Stream)
		}
		if e.Version != last[e.Stream]+1 {
			return fmt.Errorf("%s: version %d after %d", e.Stream, e.Version, last[e.Stream])
		}
		last[e.Stream] = e.Version
		got[e.Stream]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scan counted %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Scan(ctx(t), prefix, func(events.Envelope) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("scan did not stop at the callback's error: %v after %d", err, n)
	}
}
