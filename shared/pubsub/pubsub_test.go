package pubsub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/codeset/codeset/events"
	evfirestore "github.com/codeset/codeset/events/firestore"
	"github.com/codeset/codeset/shared/emulator"
	"github.com/codeset/codeset/shared/firestoredb"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/pubsub"
)

// deliveries records what a consumer received, per stream, in arrival order.
type deliveries struct {
	mu  sync.Mutex
	got map[string][]int64
	n   int
}

func (d *deliveries) add(e events.Envelope) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got[e.Stream] = append(d.got[e.Stream], e.Version)
	d.n++
}

func (d *deliveries) snapshot() (map[string][]int64, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]int64, len(d.got))
	for k, v := range d.got {
		out[k] = append([]int64(nil), v...)
	}
	return out, d.n
}

// inOrder reports whether every stream's deliveries are 1..n in order, allowing a message to be
// delivered again right after itself (a redelivery) but never an event before an earlier one.
func inOrder(got map[string][]int64, n int64) error {
	for stream, vs := range got {
		want := int64(1)
		for _, v := range vs {
			switch v {
			case want:
				want++
			case want - 1: // redelivered
			default:
				return fmt.Errorf("%s: got %v, out of order", stream, vs)
			}
		}
		if want != n+1 {
			return fmt.Errorf("%s: got %v, want 1..%d", stream, vs, n)
		}
	}
	return nil
}

// TestRoundTripThroughEmulator publishes the events of a few streams, interleaved, through the
// Publisher, and proves that a push subscription (through PushHandler, with one failed delivery
// that Pub/Sub must redeliver) and a pull subscription each receive every event, in version
// order per stream, and that the publisher marked them all published in the store.
func TestRoundTripThroughEmulator(t *testing.T) {
	emulator.Require(t, emulator.PubSub, emulator.Firestore)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	project := emulator.Project(t)
	// The GCP pairing: the outbox the publisher marks is the Firestore event store.
	fs, err := firestoredb.Open(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	store := evfirestore.New(fs)
	c, err := pubsub.Open(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, topic := range []string{"events", "events-dead-letter"} {
		if err := c.EnsureTopic(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.EnsureTopic(ctx, "events"); err != nil {
		t.Fatalf("creating an existing topic again: %v", err)
	}

	pushed := &deliveries{got: map[string][]int64{}}
	var (
		failOnce sync.Once
		failedAt atomic.Value // the stream whose version 2 failed once
	)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(pubsub.PushHandler(logger, func(_ context.Context, e events.Envelope) error {
		failed := false
		if e.Version == 2 {
			failOnce.Do(func() { failed = true; failedAt.Store(e.Stream) })
		}
		if failed {
			return fmt.Errorf("first delivery of %s@2 fails on purpose", e.Stream)
		}
		pushed.add(e)
		return nil
	}))
	defer func() {
		srv.CloseClientConnections() // a push still in flight must not keep Close waiting
		srv.Close()
	}()
	sub := pubsub.Subscription{Name: "projector", Topic: "events", Endpoint: srv.URL + "/_consumers/projector",
		DeadLetterTopic: "events-dead-letter", MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	if err := c.EnsurePushSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePushSubscription(ctx, sub); err != nil {
		t.Fatalf("ensuring an existing subscription again: %v", err)
	}
	if err := c.EnsurePullSubscription(ctx, "pull", "events"); err != nil {
		t.Fatal(err)
	}

	const streams, perStream = 3, 5
	var all [][]events.Envelope
	for s := range streams {
		st := fmt.Sprintf("session-%d-%s", s, ids.New())
		batch := make([]events.Envelope, perStream)
		for i := range batch {
			batch[i], _ = events.New(ids.New(), "u1", "test.happened", time.Now(), map[string]int{"i": i})
		}
		stored, err := store.Append(ctx, st, 0, batch...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, stored)
	}
	var interleaved []events.Envelope
	for i := range perStream {
		for s := range streams {
			interleaved = append(interleaved, all[s][i])
		}
	}
	pub := c.Publisher("events", store)
	if err := pub.Publish(ctx, interleaved...); err != nil {
		t.Fatal(err)
	}
	pub.Stop()
	if left, err := store.Unpublished(ctx, 100); err != nil || len(left) != 0 {
		t.Fatalf("after an acknowledged publish the outbox holds %d events (%v), want none", len(left), err)
	}

	pulled := &deliveries{got: map[string][]int64{}}
	rctx, stop := context.WithCancel(ctx)
	received := make(chan error, 1)
	go func() {
		received <- c.Receive(rctx, "pull", func(_ context.Context, m *cloudpubsub.Message) {
			var e events.Envelope
			if err := json.Unmarshal(m.Data, &e); err != nil || m.OrderingKey != e.Stream || m.Attributes[pubsub.AttrType] != e.Type {
				t.Errorf("pulled message %s (key %q, attributes %v): %v", m.Data, m.OrderingKey, m.Attributes, err)
			}
			pulled.add(e)
			m.Ack()
		})
	}()
	defer func() {
		stop()
		<-received // before the client closes
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		p, pn := pushed.snapshot()
		q, qn := pulled.snapshot()
		if pn >= streams*perStream && qn >= streams*perStream {
			if err := inOrder(p, perStream); err != nil {
				t.Fatalf("push: %v", err)
			}
			if err := inOrder(q, perStream); err != nil {
				t.Fatalf("pull: %v", err)
			}
			if len(p) != streams || len(q) != streams {
				t.Fatalf("push saw %d streams, pull %d; want %d", len(p), len(q), streams)
			}
			if failedAt.Load() == nil {
				t.Fatal("no delivery failed: the redelivery path was not exercised")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: pushed %v, pulled %v", p, q)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
