package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/ids"
)

// The event store's speed targets (docs/PERFORMANCE.md): durable appends (synchronous=FULL, the
// file in the test's temp dir on the real disk), with concurrent appenders to distinct streams.
//
//	go test ./events/sqlite -run '^$' -bench . -benchtime 3s

var benchData = json.RawMessage(`{"session_id":"sess_01a220e2677557901","command":"pytest -x tests/test_api.py","timeout":300}`)

// eventMaker builds events cheaply (a counter for the id, fixed data), so the benchmark measures
// the store rather than JSON encoding and random ids.
type eventMaker struct {
	prefix string
	n      atomic.Int64
	at     time.Time
}

func newEventMaker() *eventMaker {
	return &eventMaker{prefix: ids.New() + "-", at: time.Now().UTC()}
}

func (m *eventMaker) event() events.Envelope {
	return events.Envelope{ID: m.prefix + strconv.FormatInt(m.n.Add(1), 10), Type: "bench.happened", SchemaVersion: 1, OccurredAt: m.at, UserID: "user-bench", Data: benchData}
}

// runAppenders runs appenders goroutines, each appending to its own stream, batch events per
// Append, until b.N appends are done in all; it reports events/s.
func runAppenders(b *testing.B, appenders, batch int) {
	s := open(b)
	m := newEventMaker()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range appenders {
		wg.Go(func() {
			stream := fmt.Sprint("bench-", w, "-", ids.New())
			evs := make([]events.Envelope, batch)
			v := int64(0)
			for next.Add(1) <= int64(b.N) {
				for i := range evs {
					evs[i] = m.event()
				}
				if _, err := s.Append(context.Background(), stream, v, evs...); err != nil {
					b.Error(err)
					return
				}
				v += int64(batch)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendSingle: one event per Append, each appender on its own stream (requests of
// many users); every Append returns only once its event is durable.
func BenchmarkAppendSingle(b *testing.B) {
	for _, appenders := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) { runAppenders(b, appenders, 1) })
	}
}

// BenchmarkAppendBatch100: 100 events per Append (an import, a replay, a busy aggregate).
func BenchmarkAppendBatch100(b *testing.B) {
	for _, appenders := range []int{1, 4} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) { runAppenders(b, appenders, 100) })
	}
}
