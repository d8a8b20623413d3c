// Package docstoretest is the contract suite of projections.DocStore. projections/sqlite runs it
// in its tests; projections/firestore runs it against the emulator with fewer concurrent
// updaters (Options), because the emulator handles contending transactions badly.
package docstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/ids"
)

// Options says how hard to push the adapter under test.
type Options struct {
	// Updaters is N, the number of goroutines incrementing one counter document at once through
	// Update. Default 16.
	Updaters int
	// Increments is how many times each updater increments it. Default 10.
	Increments int
	// Serial runs the tests one after the other instead of in parallel.
	Serial bool
}

func (o Options) withDefaults() Options {
	if o.Updaters <= 0 {
		o.Updaters = 16
	}
	if o.Increments <= 0 {
		o.Increments = 10
	}
	return o
}

// Run runs every test of the contract against stores made by newStore, called once per test.
// Every test uses its own fresh collection names, so newStore may return a shared store.
func Run(t *testing.T, opts Options, newStore func(t *testing.T) projections.DocStore) {
	opts = opts.withDefaults()
	tests := []struct {
		name string
		fn   func(t *testing.T, s projections.DocStore, o Options)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"UpdateCreatesWhenAbsent", testUpdateCreate},
		{"UpdateNilWritesNothing", testUpdateNil},
		{"UpdateErrorAborts", testUpdateError},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"ConcurrentFailingUpdatesFailAlone", testConcurrentFailures},
		{"UpdatePanicReachesCaller", testUpdatePanic},
		{"QueryByField", testQueryFilters},
		{"QueryOrder", testQueryOrder},
		{"QueryLimitAndCursor", testQueryPaging},
		{"QueryBadCursor", testBadCursor},
		{"QueryOffset", testQueryOffset},
		{"Count", testCount},
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

func coll(name string) string { return name + "_" + ids.New() }

// doc is the shape the query tests store.
type doc struct {
	ID     string `json:"id"`
	Owner  string `json:"owner"`
	Active bool   `json:"active"`
	Rank   int64  `json:"rank"`
	Group  int64  `json:"group"`
	Name   string `json:"name"`
}

func put(t *testing.T, s projections.DocStore, c string, d doc) {
	t.Helper()
	if err := projections.Put(ctx(t), s, c, d.ID, d); err != nil {
		t.Fatalf("put %s/%s: %v", c, d.ID, err)
	}
}

func jsonEq(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("stored document is not JSON: %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(a, b)
}

func testGetPutDelete(t *testing.T, s projections.DocStore, _ Options) {
	c := coll("gpd")
	if _, err := s.Get(ctx(t), c, "a"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("get of a missing document: %v, want ErrNotFound", err)
	}
	body := `{"s":"x \"y\" é","n":12345678901,"f":2.5,"b":false,"nil":null,"list":["a",1],"obj":{"k":[true]}}`
	if err := s.Put(ctx(t), c, "a", json.RawMessage(body)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), c, "a")
	if err != nil || !jsonEq(t, got, body) {
		t.Fatalf("get after put = %s, %v; want %s", got, err, body)
	}
	// Put replaces the whole document: fields it does not carry are gone.
	if err := s.Put(ctx(t), c, "a", json.RawMessage(`{"only":1}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx(t), c, "a"); err != nil || !jsonEq(t, got, `{"only":1}`) {
		t.Fatalf("get after overwrite = %s, %v", got, err)
	}
	// Collections are separate namespaces.
	if _, err := s.Get(ctx(t), coll("gpd"), "a"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("get in another collection: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), c, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), c, "a"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), c, "a"); err != nil {
		t.Fatalf("delete of a missing document: %v", err)
	}
}

type counter struct {
	N     int      `json:"n"`
	Touch []string `json:"touch,omitempty"`
}

func testUpdateCreate(t *testing.T, s projections.DocStore, _ Options) {
	c := coll("create")
	var sawNil bool
	err := s.Update(ctx(t), c, "x", func(cur json.RawMessage) (json.RawMessage, error) {
		sawNil = cur == nil
		return json.RawMessage(`{"n":1}`), nil
	})
	if err != nil || !sawNil {
		t.Fatalf("update of an absent document: err %v, saw nil current %v", err, sawNil)
	}
	err = projections.Update(ctx(t), s, c, "x", func(v *counter, exists bool) (bool, error) {
		if !exists || v.N != 1 {
			return false, fmt.Errorf("current = %+v exists=%v, want n=1", *v, exists)
		}
		v.N = 2
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := projections.Get[counter](ctx(t), s, c, "x"); err != nil || got.N != 2 {
		t.Fatalf("after two updates: %+v, %v", got, err)
	}
}

func testUpdateNil(t *testing.T, s projections.DocStore, _ Options) {
	c := coll("nil")
	if err := s.Update(ctx(t), c, "x", func(json.RawMessage) (json.RawMessage, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), c, "x"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("(nil, nil) on an absent document created it: %v", err)
	}
	if err := s.Put(ctx(t), c, "y", json.RawMessage(`{"n":7}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx(t), c, "y", func(json.RawMessage) (json.RawMessage, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx(t), c, "y"); err != nil || !jsonEq(t, got, `{"n":7}`) {
		t.Fatalf("(nil, nil) changed the document: %s, %v", got, err)
	}
}

func testUpdateError(t *testing.T, s projections.DocStore, _ Options) {
	c := coll("abort")
	if err := s.Put(ctx(t), c, "y", json.RawMessage(`{"n":7}`)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	for _, id := range []string{"y", "absent"} {
		err := s.Update(ctx(t), c, id, func(json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"n":8}`), boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("update of %s: err %v, want the closure's error", id, err)
		}
	}
	if got, err := s.Get(ctx(t), c, "y"); err != nil || !jsonEq(t, got, `{"n":7}`) {
		t.Fatalf("an aborted update changed the document: %s, %v", got, err)
	}
	if _, err := s.Get(ctx(t), c, "absent"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("an aborted update created the document: %v", err)
	}
	// The store is usable after an aborted transaction.
	if err := s.Put(ctx(t), c, "z", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentUpdates(t *testing.T, s projections.DocStore, o Options) {
	c := coll("counter")
	var wg sync.WaitGroup
	errs := make([]error, o.Updaters)
	for i := range o.Updaters {
		wg.Go(func() {
			for range o.Increments {
				err := projections.Update(ctx(t), s, c, "n", func(v *counter, _ bool) (bool, error) {
					v.N++
					return true, nil
				})
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("updater %d: %v", i, err)
		}
	}
	got, err := projections.Get[counter](ctx(t), s, c, "n")
	if err != nil || got.N != o.Updaters*o.Increments {
		t.Fatalf("counter = %d (%v) after %d x %d increments", got.N, err, o.Updaters, o.Increments)
	}
}

// testConcurrentFailures: updates whose closure fails, and puts of malformed documents, racing
// with good writes (an adapter that commits concurrent writes together must keep them apart).
func testConcurrentFailures(t *testing.T, s projections.DocStore, o Options) {
	c := coll("failing")
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, o.Updaters)
	const rounds = 3 // isolation, not contention, is under test: a few writes per writer
	for i := range o.Updaters {
		wg.Go(func() {
			for j := range rounds {
				var err error
				switch (i + j) % 3 {
				case 0:
					err = projections.Update(ctx(t), s, c, "n", func(v *counter, _ bool) (bool, error) {
						v.N++
						return true, nil
					})
				case 1:
					err = projections.Update(ctx(t), s, c, "n", func(v *counter, _ bool) (bool, error) {
						v.N += 1000
						return true, boom
					})
					if errors.Is(err, boom) {
						err = nil
					} else {
						err = fmt.Errorf("failing update returned %v, want its closure's error", err)
					}
				case 2:
					if perr := s.Put(ctx(t), c, fmt.Sprint("bad", i, j), json.RawMessage(`{"not json`)); perr == nil {
						err = errors.New("a malformed document was accepted")
					}
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	want := 0
	for i := range o.Updaters {
		for j := range rounds {
			if (i+j)%3 == 0 {
				want++
			}
		}
	}
	got, err := projections.Get[counter](ctx(t), s, c, "n")
	if err != nil || got.N != want {
		t.Fatalf("counter = %d (%v), want %d: only the good updates count", got.N, err, want)
	}
	if n, err := s.Count(ctx(t), c); err != nil || n != 1 {
		t.Fatalf("%d documents (%v): a malformed put was stored", n, err)
	}
}

func testUpdatePanic(t *testing.T, s projections.DocStore, _ Options) {
	c := coll("panic")
	func() {
		defer func() {
			if p := recover(); p != "closure panic" {
				t.Fatalf("recovered %v, want the closure's panic", p)
			}
		}()
		s.Update(ctx(t), c, "x", func(json.RawMessage) (json.RawMessage, error) { panic("closure panic") })
		t.Fatal("Update returned after its closure panicked")
	}()
	if _, err := s.Get(ctx(t), c, "x"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a panicking update wrote: %v", err)
	}
	if err := s.Put(ctx(t), c, "y", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("the store is unusable after a panic: %v", err)
	}
}

// fixture stores 30 documents: owners o0..o2 in turn, every third one inactive, ranks in a
// scrambled order with ties (rank = i*7 mod 10), groups 0..4.
func fixture(t *testing.T, s projections.DocStore) (string, []doc) {
	t.Helper()
	c := coll("q")
	var all []doc
	for i := range 30 {
		d := doc{
			ID:     fmt.Sprintf("d%02d", (i*11)%30), // ids not in insertion order
			Owner:  fmt.Sprintf("o%d", i%3),
			Active: i%3 != 1,
			Rank:   int64((i * 7) % 10),
			Group:  int64(i % 5),
			Name:   fmt.Sprintf("n%d", i),
		}
		put(t, s, c, d)
		all = append(all, d)
	}
	// Documents of another collection never show up.
	put(t, s, coll("q"), doc{ID: "d00", Owner: "o0", Active: true})
	return c, all
}

func query(t *testing.T, s projections.DocStore, c string, q projections.Query) ([]doc, string) {
	t.Helper()
	got, next, err := projections.List[doc](ctx(t), s, c, q)
	if err != nil {
		t.Fatalf("query %+v: %v", q, err)
	}
	return got, next
}

func docIDs(ds []doc) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// expect filters and sorts the fixture the way the store must.
func expect(all []doc, keep func(doc) bool, orders ...projections.Order) []string {
	var out []doc
	for _, d := range all {
		if keep(d) {
			out = append(out, d)
		}
	}
	field := func(d doc, f string) int64 {
		switch f {
		case "rank":
			return d.Rank
		case "group":
			return d.Group
		}
		panic(f)
	}
	slices.SortFunc(out, func(a, b doc) int {
		for _, o := range orders {
			x, y := field(a, o.Field), field(b, o.Field)
			if x != y {
				if (x < y) != o.Desc {
					return -1
				}
				return 1
			}
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return docIDs(out)
}

func testQueryFilters(t *testing.T, s projections.DocStore, _ Options) {
	c, all := fixture(t, s)
	cases := []struct {
		name  string
		where []projections.Filter
		keep  func(doc) bool
	}{
		{"string", []projections.Filter{{Field: "owner", Value: "o1"}}, func(d doc) bool { return d.Owner == "o1" }},
		{"bool true", []projections.Filter{{Field: "active", Value: true}}, func(d doc) bool { return d.Active }},
		{"bool false", []projections.Filter{{Field: "active", Value: false}}, func(d doc) bool { return !d.Active }},
		{"int", []projections.Filter{{Field: "rank", Value: 4}}, func(d doc) bool { return d.Rank == 4 }},
		{"int64", []projections.Filter{{Field: "group", Value: int64(0)}}, func(d doc) bool { return d.Group == 0 }},
		{"two fields", []projections.Filter{{Field: "owner", Value: "o0"}, {Field: "group", Value: 3}}, func(d doc) bool { return d.Owner == "o0" && d.Group == 3 }},
		{"no match", []projections.Filter{{Field: "owner", Value: "nobody"}}, func(doc) bool { return false }},
		{"string is not a number", []projections.Filter{{Field: "rank", Value: "4"}}, func(doc) bool { return false }},
		{"none", nil, func(doc) bool { return true }},
	}
	for _, tc := range cases {
		got, next := query(t, s, c, projections.Query{Where: tc.where})
		want := expect(all, tc.keep)
		if !slices.Equal(docIDs(got), want) || next != "" {
			t.Errorf("%s: got %v (next %q), want %v", tc.name, docIDs(got), next, want)
		}
	}
}

func testQueryOrder(t *testing.T, s projections.DocStore, _ Options) {
	c, all := fixture(t, s)
	active := func(d doc) bool { return d.Active }
	cases := [][]projections.Order{
		{{Field: "rank"}},
		{{Field: "rank", Desc: true}},
		{{Field: "group"}, {Field: "rank", Desc: true}},
		{{Field: "group", Desc: true}, {Field: "rank"}},
	}
	for _, orders := range cases {
		got, _ := query(t, s, c, projections.Query{Where: []projections.Filter{{Field: "active", Value: true}}, OrderBy: orders})
		if want := expect(all, active, orders...); !slices.Equal(docIDs(got), want) {
			t.Errorf("order %+v: got %v, want %v", orders, docIDs(got), want)
		}
	}
}

func testQueryPaging(t *testing.T, s projections.DocStore, _ Options) {
	c, all := fixture(t, s)
	type shape struct {
		where  []projections.Filter
		keep   func(doc) bool
		orders []projections.Order
	}
	shapes := []shape{
		{nil, func(doc) bool { return true }, nil},
		{nil, func(doc) bool { return true }, []projections.Order{{Field: "rank", Desc: true}}},
		{[]projections.Filter{{Field: "owner", Value: "o2"}}, func(d doc) bool { return d.Owner == "o2" }, []projections.Order{{Field: "rank"}}},
		{[]projections.Filter{{Field: "active", Value: true}}, func(d doc) bool { return d.Active }, []projections.Order{{Field: "group"}, {Field: "rank", Desc: true}}},
	}
	for _, sh := range shapes {
		want := expect(all, sh.keep, sh.orders...)
		for _, limit := range []int{1, 3, 7, len(want), len(want) + 1} {
			var seen []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("paging %+v by %d does not end", sh.orders, limit)
				}
				got, next := query(t, s, c, projections.Query{Where: sh.where, OrderBy: sh.orders, Limit: limit, Cursor: cursor})
				if len(got) > limit {
					t.Fatalf("page of %d documents with limit %d", len(got), limit)
				}
				seen = append(seen, docIDs(got)...)
				if next == "" {
					break
				}
				if len(got) == 0 {
					t.Fatalf("empty page with a next cursor")
				}
				cursor = next
			}
			if !slices.Equal(seen, want) {
				t.Errorf("paging %+v by %d visited %v, want every document once in order %v", sh.orders, limit, seen, want)
			}
		}
	}
	// A limit that ends exactly on the last document says there is no next page.
	if got, next := query(t, s, c, projections.Query{Limit: len(all)}); len(got) != len(all) || next != "" {
		t.Fatalf("limit = size: %d documents, next %q", len(got), next)
	}
}

// Offset skips matching documents before the page, after the cursor when there is one.
func testQueryOffset(t *testing.T, s projections.DocStore, _ Options) {
	c, all := fixture(t, s)
	orders := []projections.Order{{Field: "rank", Desc: true}}
	want := expect(all, func(doc) bool { return true }, orders...)
	for _, offset := range []int{0, 1, 4, len(want) - 1, len(want), len(want) + 3} {
		got, next := query(t, s, c, projections.Query{OrderBy: orders, Limit: 3, Offset: offset})
		w := want[min(offset, len(want)):min(offset+3, len(want))]
		if !slices.Equal(docIDs(got), w) {
			t.Errorf("offset %d, limit 3: got %v, want %v", offset, docIDs(got), w)
		}
		if (next != "") != (offset+3 < len(want)) {
			t.Errorf("offset %d, limit 3: next cursor %q with %d documents in all", offset, next, len(want))
		}
	}
	first, next := query(t, s, c, projections.Query{OrderBy: orders, Limit: 2})
	got, _ := query(t, s, c, projections.Query{OrderBy: orders, Limit: 2, Cursor: next, Offset: 1})
	if w := want[3:5]; len(first) != 2 || !slices.Equal(docIDs(got), w) {
		t.Errorf("cursor after 2, offset 1: got %v, want %v", docIDs(got), w)
	}
}

func testBadCursor(t *testing.T, s projections.DocStore, _ Options) {
	c, _ := fixture(t, s)
	for _, cursor := range []string{"garbage", "!!!", "bm90IGEgY3Vyc29y"} {
		if _, err := s.Query(ctx(t), c, projections.Query{Limit: 2, Cursor: cursor}); !errors.Is(err, projections.ErrBadCursor) {
			t.Errorf("cursor %q: err %v, want ErrBadCursor", cursor, err)
		}
	}
}

func testCount(t *testing.T, s projections.DocStore, _ Options) {
	c, all := fixture(t, s)
	count := func(keep func(doc) bool) int {
		n := 0
		for _, d := range all {
			if keep(d) {
				n++
			}
		}
		return n
	}
	cases := []struct {
		where []projections.Filter
		keep  func(doc) bool
	}{
		{nil, func(doc) bool { return true }},
		{[]projections.Filter{{Field: "owner", Value: "o0"}}, func(d doc) bool { return d.Owner == "o0" }},
		{[]projections.Filter{{Field: "active", Value: false}}, func(d doc) bool { return !d.Active }},
		{[]projections.Filter{{Field: "owner", Value: "o1"}, {Field: "rank", Value: 1}}, func(d doc) bool { return d.Owner == "o1" && d.Rank == 1 }},
	}
	for _, tc := range cases {
		n, err := s.Count(ctx(t), c, tc.where...)
		if err != nil || n != count(tc.keep) {
			t.Errorf("count %+v = %d, %v; want %d", tc.where, n, err, count(tc.keep))
		}
	}
	if n, err := s.Count(ctx(t), coll("empty")); err != nil || n != 0 {
		t.Fatalf("count of an empty collection = %d, %v", n, err)
	}
}
