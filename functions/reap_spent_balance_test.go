package functions

import (
	"context"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
)

// startReadySession records a session requested at cpm cents a minute and ready at t0.
func startReadySession(t *testing.T, h *billingHarness, user, id string, cpm int64, t0 time.Time) {
	t.Helper()
	req, err := events.RequestSession("req-"+id, events.SessionRequestedData{SessionID: id, UserID: user, Dataset: "d", SampleID: "x",
		TTLMinutes: 600, RequestedAt: t0, CentsPerMinute: cpm})
	if err != nil {
		t.Fatal(err)
	}
	ready, err := events.New("ready-"+id, user, events.SessionReady, t0, events.SessionReadyData{ReadyAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record(context.Background(), h.a, events.SessionStream(id), 0, req, ready); err != nil {
		t.Fatal(err)
	}
}

func TestReapSpentBalances(t *testing.T) {
	t.Parallel()
	h := newBillingHarness(t, nil)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	h.a.Clock = fake
	ctx := context.Background()
	h.grant("poor", "g-poor", 100) // 100 cents: two sessions at 10/min last 5 minutes
	h.grant("rich", "g-rich", 100_000)
	startReadySession(t, h, "poor", "p1", 10, t0)
	startReadySession(t, h, "poor", "p2", 10, t0)
	startReadySession(t, h, "rich", "r1", 10, t0)

	fake.Advance(4 * time.Minute)
	if ended, err := ReapSpentBalances(ctx, h.a); err != nil || len(ended) != 0 {
		t.Fatalf("at 4 min (80 of 100 cents accrued): ended %v, %v", ended, err)
	}
	fake.Advance(time.Minute)
	ended, err := ReapSpentBalances(ctx, h.a)
	if err != nil || len(ended) != 2 {
		t.Fatalf("at 5 min (100 of 100 cents accrued): ended %v, %v", ended, err)
	}
	for _, id := range []string{"p1", "p2"} {
		s, _, err := loadSession(ctx, h.a, id)
		if err != nil || s.Ended == nil || s.Ended.Reason != events.EndBalanceExhausted || s.Ended.BillableSeconds != 300 {
			t.Fatalf("%s: %+v %v", id, s.Ended, err)
		}
	}
	if b := h.balance("poor"); b.BalanceCents != 0 || b.TotalSpentCents != 100 {
		t.Fatalf("poor's balance after the reaper: %+v", b)
	}
	if s, _, _ := loadSession(ctx, h.a, "r1"); s.Status != events.StatusReady {
		t.Fatalf("rich's session: %s", s.Status)
	}
	// The next pass finds nothing more to do.
	if ended, err := ReapSpentBalances(ctx, h.a); err != nil || len(ended) != 0 {
		t.Fatalf("second pass: %v %v", ended, err)
	}
}
