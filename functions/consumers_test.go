package functions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
)

// Two test consumers of a test-only event type, so they see nothing of the other tests' events.
// Their handlers are deliberately not idempotent (they append): only the runner's checkpoints
// keep an inline application followed by the bus's delivery from counting an event twice.
const consumerTestType = "test.consumers.counted"

type appliedDoc struct {
	Versions []int64 `json:"versions"`
}

func appendApplied(coll string) func(ctx context.Context, a *app.App, e events.Envelope) error {
	return func(ctx context.Context, a *app.App, e events.Envelope) error {
		return projections.Update(ctx, a.Docs, coll, e.Stream, func(d *appliedDoc, _ bool) (bool, error) {
			d.Versions = append(d.Versions, e.Version)
			return true, nil
		})
	}
}

var consumerTestGate struct {
	sync.Mutex
	failAsync bool
}

// countingConsumers count what they apply of the test event type only.
func countingConsumers() []app.Consumer {
	wants := func(e events.Envelope) bool { return e.Type == consumerTestType }
	return []app.Consumer{
		{Name: "TestInlineCounter", Wants: wants, Inline: true, Handle: appendApplied("test_inline_applied")},
		{Name: "TestAsyncCounter", Wants: wants, Handle: func(ctx context.Context, a *app.App, e events.Envelope) error {
			consumerTestGate.Lock()
			fail := consumerTestGate.failAsync
			consumerTestGate.Unlock()
			if fail {
				return errors.New("poisoned on purpose")
			}
			return appendApplied("test_async_applied")(ctx, a, e)
		}},
	}
}

// openEmbeddedApp opens the embedded default on a fresh data dir, with the counting consumers,
// and runs its bus.
func openEmbeddedApp(t *testing.T, tune func(*config.Config)) *app.App {
	t.Helper()
	return openApp(t, appSpec{Consumers: countingConsumers(), Run: runBus, Tune: func(cfg *config.Config) {
		cfg.ConsumerBackoff = time.Millisecond
		if tune != nil {
			tune(cfg)
		}
	}}).App
}

func countedEvent(t *testing.T) events.Envelope {
	t.Helper()
	e, err := events.New(ids.New(), "user-1", consumerTestType, time.Now(), map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func applied(t *testing.T, a *app.App, coll, stream string) []int64 {
	t.Helper()
	d, err := projections.Get[appliedDoc](context.Background(), a.Docs, coll, stream)
	if errors.Is(err, projections.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Versions
}

func waitOutboxEmpty(t *testing.T, a *app.App) {
	t.Helper()
	eventually(t, 20*time.Second, func() (bool, string) {
		left, err := a.Events.Unpublished(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("%s@%d still unpublished", left[0].Stream, left[0].Version)
		}
		return true, ""
	})
}

func TestRecordProjectsInlineAndTheBusDeliversEachEventOnce(t *testing.T) {
	t.Parallel()
	a := openEmbeddedApp(t, nil)
	ctx := context.Background()
	stream := "counted-" + ids.New()
	for v := range 3 {
		if _, err := record(ctx, a, stream, int64(2*v), countedEvent(t), countedEvent(t)); err != nil {
			t.Fatal(err)
		}
		// Read-your-writes: the inline projector has run when Record returns.
		if got := applied(t, a, "test_inline_applied", stream); len(got) != 2*(v+1) {
			t.Fatalf("after Record %d the inline read model has %v", v, got)
		}
	}
	waitOutboxEmpty(t, a)
	want := []int64{1, 2, 3, 4, 5, 6}
	if got := applied(t, a, "test_inline_applied", stream); !slices.Equal(got, want) {
		t.Fatalf("inline consumer applied %v, want %v: the bus's delivery must be a no-op", got, want)
	}
	if got := applied(t, a, "test_async_applied", stream); !slices.Equal(got, want) {
		t.Fatalf("bus consumer applied %v, want %v", got, want)
	}
	// A Pub/Sub push of an event already applied changes nothing; an unknown consumer is an error.
	evs, err := a.Events.Load(ctx, stream, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Deliver(ctx, "TestAsyncCounter", evs[0]); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, a, "test_async_applied", stream); !slices.Equal(got, want) {
		t.Fatalf("a redelivery changed the read model: %v", got)
	}
	if err := a.Deliver(ctx, "NoSuchConsumer", evs[0]); err == nil {
		t.Fatal("delivery to an unknown consumer succeeded")
	}
}

func TestDeliverFillsGapsAndDeadLetters(t *testing.T) {
	t.Parallel()
	a := openEmbeddedApp(t, func(c *config.Config) { c.ConsumerAttempts = 2 })
	ctx := context.Background()
	stream := "counted-" + ids.New()
	// The bus reads the outbox once when it starts: let that read pass first (an event recorded
	// and published goes through only after it), or it could deliver the events below itself.
	if _, err := record(ctx, a, "counted-"+ids.New(), 0, countedEvent(t)); err != nil {
		t.Fatal(err)
	}
	waitOutboxEmpty(t, a)
	// Appended straight to the store: nothing inline, and the bus is not woken (it would only
	// find them at its next poll, a second away).
	stored, err := a.Events.Append(ctx, stream, 0, countedEvent(t), countedEvent(t), countedEvent(t))
	if err != nil {
		t.Fatal(err)
	}
	// A push of the last event first: the runner applies 1 and 2 before it.
	if err := a.Deliver(ctx, "TestInlineCounter", stored[2]); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, a, "test_inline_applied", stream); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("applied %v, want 1 2 3", got)
	}
	// A consumer that keeps failing dead-letters the event after the configured attempts and moves on.
	consumerTestGate.Lock()
	consumerTestGate.failAsync = true
	consumerTestGate.Unlock()
	defer func() {
		consumerTestGate.Lock()
		consumerTestGate.failAsync = false
		consumerTestGate.Unlock()
	}()
	if err := a.Deliver(ctx, "TestAsyncCounter", stored[0]); err != nil {
		t.Fatal(err)
	}
	dl, err := projections.Get[projections.DeadLetter](ctx, a.Docs, projections.DeadLettersColl, "TestAsyncCounter:"+stream+":1")
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if dl.Attempts != 2 || dl.EventID != stored[0].ID || dl.Error != "poisoned on purpose" {
		t.Fatalf("dead letter %+v", dl)
	}
}
