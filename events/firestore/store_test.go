package firestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evfirestore "github.com/codeset/codeset/events/firestore"
	"github.com/codeset/codeset/events/storetest"
	"github.com/codeset/codeset/shared/emulator"
	"github.com/codeset/codeset/shared/firestoredb"
	"github.com/codeset/codeset/shared/ids"
)

// open returns a store on the Firestore emulator in a project of its own, so tests running in
// parallel never see each other's outbox.
func open(t *testing.T) events.Store {
	t.Helper()
	emulator.Require(t, emulator.Firestore)
	c, err := firestoredb.Open(context.Background(), emulator.Project(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return evfirestore.New(c)
}

// TestContractOnFirestoreEmulator runs the event-store contract on the emulator with 8 racing
// appenders: the heavy concurrency (64) is SQLite's run; here it must stay fast on a busy
// 2-core machine (64 pass too on an idle one).
func TestContractOnFirestoreEmulator(t *testing.T) {
	emulator.Require(t, emulator.Firestore)
	storetest.Run(t, storetest.Options{Appenders: 8}, open)
}

// BenchmarkAppendOnEmulator: one-event appends to fresh streams, one after the other (the
// latency of an append transaction), on the emulator.
func BenchmarkAppendOnEmulator(b *testing.B) {
	emulator.Require(b, emulator.Firestore)
	c, err := firestoredb.Open(context.Background(), emulator.Project(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := evfirestore.New(c)
	ctx := context.Background()
	prefix := "bench-" + ids.New() + "-"
	b.ResetTimer()
	for i := range b.N {
		e, _ := events.New(ids.New(), "u", "bench.happened", time.Now(), map[string]int{"i": i})
		if _, err := s.Append(ctx, fmt.Sprintf("%s%d", prefix, i), 0, e); err != nil {
			b.Fatal(err)
		}
	}
}
