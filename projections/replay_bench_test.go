package projections

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/shared/sqlitedb"
)

func benchSessionEnd(i int, at time.Time) events.Envelope {
	user := fmt.Sprintf("u%d", i%100)
	sid := fmt.Sprintf("s%d", i)
	secs := float64(i%7200) + 0.25
	e, err := events.New("end-"+sid, user, events.SessionEnded, at, events.SessionEndedData{SessionID: sid, UserID: user,
		Reason: events.EndClosed, EndedAt: at, BillableSeconds: secs, CentsPerMinute: 10, ChargeCents: events.ChargeCents(secs, 10)})
	if err != nil {
		panic(err)
	}
	e.Stream, e.Version = events.SessionStream(sid), 4
	return e
}

// BenchmarkReplayFold measures the fold alone: session-end events already in memory.
func BenchmarkReplayFold(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]events.Envelope, 10000)
	for i := range evs {
		evs[i] = benchSessionEnd(i, at)
	}
	r := NewReplay("")
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if err := r.Apply(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

// BenchmarkReplayFromSQLite measures a whole replay: events read from the SQLite store and folded.
func BenchmarkReplayFromSQLite(b *testing.B) {
	const n = 100000
	db, err := sqlitedb.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store, err := evsqlite.New(db)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tx, _ := db.W.Begin()
	stmt, _ := tx.Prepare(`INSERT INTO events (id, stream, version, type, schema_version, occurred_at, user_id, data, published) VALUES (?, ?, 1, ?, 1, ?, ?, ?, 1)`)
	for i := 0; i < n; i++ {
		e := benchSessionEnd(i, at)
		if _, err := stmt.Exec(e.ID, e.Stream, e.Type, e.OccurredAt.UnixMicro(), e.UserID, []byte(e.Data)); err != nil {
			b.Fatal(err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	total := 0
	for i := 0; i < b.N; i++ {
		r := NewReplay("")
		if err := r.Run(ctx, store); err != nil {
			b.Fatal(err)
		}
		if r.Events != n {
			b.Fatalf("replayed %d events of %d", r.Events, n)
		}
		total += n
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(total)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

// cpuTime is the process's user+system CPU time: on a machine shared with other work, wall time
// says more about the neighbours than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
