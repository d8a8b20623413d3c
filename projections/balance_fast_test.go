package projections

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
)

// The replay's fast path for session ends must fold exactly as EntryOf then Add do.
func TestReplayFastPathAgreesWithEntryOf(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fast, slow := NewReplay(""), map[string]*Balance{}
	var evs []events.Envelope
	for i := 0; i < 3000; i++ {
		secs := []float64{0, 1, 59, 60, 61, rng.Float64() * 10000, float64(rng.Intn(100000))}[rng.Intn(7)]
		cpm := int64(rng.Intn(40))
		d := events.SessionEndedData{SessionID: fmt.Sprintf("s%d", i), UserID: fmt.Sprintf("u%d", rng.Intn(9)), Reason: events.EndClosed,
			EndedAt: at.Add(time.Duration(rng.Intn(1e6)) * time.Millisecond), BillableSeconds: secs, CentsPerMinute: cpm}
		if rng.Intn(3) > 0 {
			d.ChargeCents = events.ChargeCents(secs, cpm)
		}
		e, err := events.New(fmt.Sprintf("e%d", i), d.UserID, events.SessionEnded, at, d)
		if err != nil {
			t.Fatal(err)
		}
		switch rng.Intn(10) {
		case 0: // an escape in a string: the fast path must step aside
			e.Data = json.RawMessage(`{"session_id":"s\"x","user_id":"` + d.UserID + `","reason":"closed","billable_seconds":61,"cents_per_minute":10,"charge_cents":11}`)
		case 1: // pretty-printed, with nulls
			e.Data = json.RawMessage(fmt.Sprintf("{\n \"user_id\" : %q ,\n \"billable_seconds\": %v, \"cents_per_minute\": %d, \"charge_cents\": null, \"ended_at\": null\n}", d.UserID, secs, cpm))
		}
		evs = append(evs, e)
	}
	for _, e := range evs {
		if err := fast.Apply(e); err != nil {
			t.Fatal(err)
		}
		entry, ok, err := EntryOf(e)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if slow[entry.UserID] == nil {
				slow[entry.UserID] = &Balance{UserID: entry.UserID}
			}
			slow[entry.UserID].Add(entry)
		}
	}
	if len(fast.Balances) != len(slow) {
		t.Fatalf("%d users fast, %d slow", len(fast.Balances), len(slow))
	}
	for u, b := range slow {
		f := fast.Balances[u]
		if f == nil || !reflect.DeepEqual(*f, *b) {
			t.Fatalf("%s: fast %+v, slow %+v", u, f, b)
		}
	}
}
