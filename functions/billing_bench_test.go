package functions

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// BenchmarkUsageHistory10k measures GET /billing/usage for a user with 10,000 transactions:
// the first page, a deep page, and a filtered query (which reads the whole ledger). It reports
// the p50 and p95 latency of each.
func BenchmarkUsageHistory10k(b *testing.B) {
	h := newBillingHarness(b, nil)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var entries []projections.LedgerEntry
	for i := 0; i < 10000; i++ {
		secs := float64(30 + i%3600)
		d := events.SessionEndedData{SessionID: fmt.Sprintf("s%05d", i), UserID: "heavy", Reason: events.EndClosed,
			EndedAt: at.Add(time.Duration(i) * time.Minute), BillableSeconds: secs, CentsPerMinute: 10, ChargeCents: events.ChargeCents(secs, 10)}
		e, _ := events.New(fmt.Sprintf("end-%05d", i), "heavy", events.SessionEnded, d.EndedAt, d)
		e.Stream, e.Version = events.SessionStream(d.SessionID), 3
		entry, _, err := projections.EntryOf(e)
		if err != nil {
			b.Fatal(err)
		}
		// The projector's documents, written directly: projecting 10,000 events one by one
		// would only slow the set-up.
		if err := projections.Put(ctx, h.a.Docs, projections.LedgerCollection, entry.ID, entry); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, entry)
	}
	bal := projections.FoldBalance("heavy", "", entries)
	if err := projections.Put(ctx, h.a.Docs, projections.BalanceCollection, "heavy", bal); err != nil {
		b.Fatal(err)
	}
	handler := h.a.Handler()
	for _, q := range []string{"", "?page=100&limit=100", "?start_date=2026-01-03&end_date=2026-01-04&transaction_types=usage"} {
		b.Run("query="+q, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodGet, app.Prefix+"/billing/usage"+q, nil)
				req.Header.Set("Authorization", "Bearer heavy")
				rec := httptest.NewRecorder()
				start := time.Now()
				handler.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
