package firestore_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/codeset/codeset/projections"
)

// TestFirestoreShapes: what Firestore cannot store as is (arrays inside arrays, ids with "/" or
// reserved forms) still round-trips exactly, and numbers keep their integer-ness for queries.
func TestFirestoreShapes(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	docs := map[string][2]string{ // id: what is put, what must come back
		"a/b":       {`{"grid":[[1,2],[3,[4,[]]]],"empty":[],"obj":{},"big":9007199254740993,"neg":-1,"f":0.1}`, ""},
		"__x__":     {`{"k":"v","nested":{"list":[{"x":[["deep"]]}]}}`, ""},
		"..":        {`{"n":1}`, ""},
		"100%":      {`{"n":2}`, ""},
		"100%2F":    {`{"n":3}`, ""},
		"plain-id1": {`{"n":1.0}`, `{"n":1}`},
	}
	for id, d := range docs {
		if err := s.Put(ctx, "shapes", id, json.RawMessage(d[0])); err != nil {
			t.Fatalf("put %q: %v", id, err)
		}
	}
	decode := func(raw string) any { // exact numbers: 2^53+1 must not pass as 2^53
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return v
	}
	for id, d := range docs {
		got, err := s.Get(ctx, "shapes", id)
		if err != nil {
			t.Fatalf("get %q: %v", id, err)
		}
		want := d[1]
		if want == "" {
			want = d[0]
		}
		if !reflect.DeepEqual(decode(string(got)), decode(want)) {
			t.Errorf("%q: got %s, want %s", id, got, want)
		}
	}
	// 1.0 is stored as the integer 1 and matches an integer filter, as in SQLite's JSON.
	n, err := s.Count(ctx, "shapes", projections.Filter{Field: "n", Value: 1})
	if err != nil || n != 2 {
		t.Fatalf("count n=1: %d, %v; want 2", n, err)
	}
}
