package functions

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/sandbox"
)

// The active-session limit holds across processes: two applications on one data dir (as two
// `codeset serve` or two Cloud Functions instances on one store), 20 concurrent creates by one
// user spread over both, and exactly the limit of them get a session; the others get 429. A
// close on one frees a slot for a create on the other.
func TestSessionLimitAcrossApplications(t *testing.T) {
	t.Parallel()
	const limit, creates = 3, 20
	dir := t.TempDir()
	tune := func(c *config.Config) { c.MaxActiveSessions = limit }
	apps := []*sessionHarness{
		newSessionHarness(t, dir, newAgentRuntime(t), tune),
		newSessionHarness(t, dir, newAgentRuntime(t), tune),
	}
	apps[0].addSample(events.Environment{})
	apps[0].credit("erin", 1000)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		refused int
		other   []string
	)
	for i := range creates {
		wg.Go(func() {
			h := apps[i%2]
			resp, raw := callAPI(t, h.url, "erin", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample})
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusCreated:
				var v struct {
					SessionID string `json:"session_id"`
				}
				json.Unmarshal(raw, &v)
				created = append(created, v.SessionID)
			case http.StatusTooManyRequests:
				refused++
			default:
				other = append(other, resp.Status+" "+string(raw))
			}
		})
	}
	wg.Wait()
	if len(created) != limit || refused != creates-limit || len(other) != 0 {
		t.Fatalf("%d creates over two applications: %d created, %d refused with 429, others %q; want %d and %d",
			creates, len(created), refused, other, limit, creates-limit)
	}

	// Full on both; a close on one application frees one slot, which the other hands out.
	apps[0].expect(http.StatusTooManyRequests, "erin", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, nil)
	apps[1].expect(http.StatusOK, "erin", "DELETE", "/sessions/"+created[0], nil, nil)
	apps[0].expect(http.StatusCreated, "erin", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, nil)
	apps[1].expect(http.StatusTooManyRequests, "erin", "POST", "/sessions", map[string]any{"dataset": testDataset, "sample_id": testSample}, nil)
}

// Every way a session ends gives its slot back: the limit is one, and after each end the slot
// is released on the user's slots stream (not merely lapsed: the clock stays short of the
// reservation's held_until) and a new session may be created.
func TestSessionEndsFreeSlots(t *testing.T) {
	t.Parallel()
	var failGate chan struct{} // the "failed" case's
	cases := []struct {
		name   string
		runtme func(t *testing.T) sandbox.Runtime
		status string // the session's status once ended
		end    func(t *testing.T, h *sessionHarness, fake *clock.Fake, sid string)
	}{
		{"closed", agentRuntimeOf, "closed", func(t *testing.T, h *sessionHarness, _ *clock.Fake, sid string) {
			h.waitStatus("fay", sid, "ready")
			h.expect(http.StatusOK, "fay", "DELETE", "/sessions/"+sid, nil, nil)
		}},
		{"failed", func(t *testing.T) sandbox.Runtime {
			// It fails once the gate opens: until then the session holds its slot.
			rt := &gatedRuntime{agentRuntime: newAgentRuntime(t), gate: make(chan struct{})}
			rt.failStart, failGate = errors.New("no space left on device"), rt.gate
			return rt
		}, "error", func(*testing.T, *sessionHarness, *clock.Fake, string) { close(failGate) }},
		{"timeout", func(t *testing.T) sandbox.Runtime {
			return &gatedRuntime{agentRuntime: newAgentRuntime(t), gate: make(chan struct{})} // never opens
		}, "error", func(t *testing.T, h *sessionHarness, fake *clock.Fake, sid string) {
			fake.Advance(h.cfg.SessionStartTimeout + startGrace + time.Second)
			if err := Reap(context.Background(), h.a); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", agentRuntimeOf, "terminated", func(t *testing.T, h *sessionHarness, fake *clock.Fake, sid string) {
			h.waitStatus("fay", sid, "ready")
			fake.Advance(time.Duration(testTTL) * time.Minute)
			if err := Reap(context.Background(), h.a); err != nil {
				t.Fatal(err)
			}
		}},
		{"spent", agentRuntimeOf, "terminated", func(t *testing.T, h *sessionHarness, fake *clock.Fake, sid string) {
			h.waitStatus("fay", sid, "ready")
			fake.Advance(2 * time.Minute) // a minute's credit
			if ended, err := ReapSpentBalances(context.Background(), h.a); err != nil || len(ended) != 1 {
				t.Fatalf("spent-balance reaper: ended %v, %v", ended, err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fake := clock.NewFake(time.Now())
			h := newSessionHarnessAt(t, "", c.runtme(t), fake, func(cfg *config.Config) {
				cfg.MaxActiveSessions, cfg.SessionStartTimeout = 1, time.Minute
			})
			h.addSample(events.Environment{})
			credit := int64(1000)
			if c.name == "spent" {
				credit = h.cfg.CostPerMinuteCents // one minute of a session
			}
			h.credit("fay", credit)
			body := map[string]any{"dataset": testDataset, "sample_id": testSample, "ttl_minutes": testTTL}
			var created struct {
				SessionID string `json:"session_id"`
			}
			h.expect(http.StatusCreated, "fay", "POST", "/sessions", body, &created)
			h.expect(http.StatusTooManyRequests, "fay", "POST", "/sessions", body, nil)

			c.end(t, h, fake, created.SessionID)
			h.waitStatus("fay", created.SessionID, c.status)
			slots := loadSlots(t, h, "fay")
			if slots.Holds(created.SessionID) {
				t.Fatalf("the session ended (%s) and still holds its slot", c.status)
			}
			if c.name != "spent" {
				h.expect(http.StatusCreated, "fay", "POST", "/sessions", body, nil)
			}
		})
	}
}

// testTTL is the time to live of the sessions of the limit tests, in minutes.
const testTTL = 5

func agentRuntimeOf(t *testing.T) sandbox.Runtime { return newAgentRuntime(t) }

// loadSlots folds user's session slots stream.
func loadSlots(t *testing.T, h *sessionHarness, user string) *events.SessionSlots {
	t.Helper()
	evs, err := h.a.Events.Load(context.Background(), events.SessionSlotsStream(user), 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := events.SessionSlotsOf(evs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
