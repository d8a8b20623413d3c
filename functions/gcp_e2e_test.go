package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/emulator"
	"github.com/codeset/codeset/shared/ids"
)

// The GCP end-to-end test's projector: it folds gcpTestType events into a document per stream.
const (
	gcpTestType      = "e2e.gcp.happened"
	gcpTestProjector = "TestGCPProjector"
	gcpTestColl      = "test_gcp_projection"
)

type gcpTestDoc struct {
	Stream   string   `json:"stream"`
	Versions []int64  `json:"versions"`
	Notes    []string `json:"notes"`
}

// gcpTestConsumer projects the test's own event type, pushed by Pub/Sub.
func gcpTestConsumer() app.Consumer {
	return app.Consumer{
		Name:  gcpTestProjector,
		Wants: func(e events.Envelope) bool { return e.Type == gcpTestType },
		Handle: func(ctx context.Context, a *app.App, e events.Envelope) error {
			var data struct {
				Note string `json:"note"`
			}
			if err := e.Decode(&data); err != nil {
				return err
			}
			return projections.Update(ctx, a.Docs, gcpTestColl, e.Stream, func(d *gcpTestDoc, _ bool) (bool, error) {
				if slices.Contains(d.Versions, e.Version) {
					return false, nil
				}
				d.Stream = e.Stream
				d.Versions = append(d.Versions, e.Version)
				d.Notes = append(d.Notes, data.Note)
				return true, nil
			})
		},
	}
}

// useGCPBackend switches cfg to the GCP backend on the emulators (skipping, or failing in CI,
// when they are not running), in a project of its own, with the secrets that backend requires.
// Pub/Sub pushes go to consumerBase, which must serve the App's Handler. A harness that runs its
// scenarios in both modes does:
//
//	srv := httptest.NewUnstartedServer(nil) // listening already: early pushes wait in its queue
//	useGCPBackend(t, &cfg, "http://"+srv.Listener.Addr().String())
//	a, _ := Open(ctx, cfg)
//	srv.Config.Handler = a.Handler()
//	srv.Start()
func useGCPBackend(t testing.TB, cfg *config.Config, consumerBase string) {
	t.Helper()
	emulator.Require(t, emulator.Firestore, emulator.PubSub)
	jwt, err := auth.GenerateKey("e2e", auth.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := auth.GenerateKey("seal", auth.AlgHS256)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Backend, cfg.Project, cfg.ConsumerBase = "gcp", emulator.Project(t), consumerBase
	cfg.BlobBucket = emulator.Bucket(t)
	cfg.JWTKeys, cfg.GitHubTokenKey = jwt.String(), strings.SplitN(seal.String(), ":", 3)[2]
}

// openGCPApp opens the App on the GCP backend against the emulators behind an httptest server
// that Pub/Sub pushes to. It returns the App, the server's URL and the paths of the push
// requests the server received.
func openGCPApp(t *testing.T) (*app.App, string, func() []string) {
	t.Helper()
	var (
		mu     sync.Mutex
		pushes []string
	)
	a := openApp(t, appSpec{Backend: "gcp", Consumers: []app.Consumer{gcpTestConsumer()},
		// The forged push below is logged as an error on purpose: the log is discarded.
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, app.ConsumerPath("")) {
					mu.Lock()
					pushes = append(pushes, r.URL.Path)
					mu.Unlock()
				}
				h.ServeHTTP(w, r)
			})
		}})
	return a.App, a.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(pushes)
	}
}

func gcpTestEvent(t *testing.T, note string) events.Envelope {
	t.Helper()
	e, err := events.New(ids.New(), "user-e2e", gcpTestType, time.Now(), map[string]string{"note": note})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitProjection polls the read model in Firestore until it holds want versions.
func waitProjection(t *testing.T, a *app.App, stream string, want int) gcpTestDoc {
	t.Helper()
	var d gcpTestDoc
	eventually(t, 45*time.Second, func() (bool, string) {
		var err error
		d, err = projections.Get[gcpTestDoc](context.Background(), a.Docs, gcpTestColl, stream)
		if err != nil && !errors.Is(err, projections.ErrNotFound) {
			t.Fatal(err)
		}
		return len(d.Versions) >= want, fmt.Sprintf("the read model of %s holds %+v, want %d versions", stream, d, want)
	})
	return d
}

// TestGCPBackendEndToEnd drives writes on the GCP backend (Firestore and Pub/Sub emulators)
// through the bus alone: a.Log.Append stores the events in Firestore and publishes them; Pub/Sub
// pushes each to the App's /_consumers/<name> endpoint; the runner applies them in order to the
// projector, which writes the read model in Firestore. No inline path and no relay run here, so
// the read model can only come from a push.
func TestGCPBackendEndToEnd(t *testing.T) {
	a, base, pushes := openGCPApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := "e2e-" + ids.New()
	start := time.Now()
	if _, err := record(ctx, a, stream, 0, gcpTestEvent(t, "first")); err != nil {
		t.Fatal(err)
	}
	waitProjection(t, a, stream, 1)
	t.Logf("append to read model through Pub/Sub push: %v", time.Since(start))
	if _, err := record(ctx, a, stream, 1, gcpTestEvent(t, "second"), gcpTestEvent(t, "third")); err != nil {
		t.Fatal(err)
	}
	d := waitProjection(t, a, stream, 3)
	if !slices.Equal(d.Versions, []int64{1, 2, 3}) || !slices.Equal(d.Notes, []string{"first", "second", "third"}) {
		t.Fatalf("read model %+v, want versions 1 2 3 with notes first second third", d)
	}
	if !slices.Contains(pushes(), app.ConsumerPath(gcpTestProjector)) {
		t.Fatalf("no push reached %s; pushes: %v", app.ConsumerPath(gcpTestProjector), pushes())
	}
	// The publisher marked the events published once Pub/Sub acknowledged them.
	left, err := a.Events.Unpublished(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if e.Stream == stream {
			t.Fatalf("%s@%d is still in the outbox after an acknowledged publish", e.Stream, e.Version)
		}
	}

	// A push of an event that is not in the store (forged, or from elsewhere) is acknowledged
	// and applies nothing; a push to an unknown consumer is a 404 that Pub/Sub keeps retrying.
	forged := gcpTestEvent(t, "forged")
	forged.Stream, forged.Version = stream, 4
	if code := postPush(t, base+app.ConsumerPath(gcpTestProjector), forged); code != http.StatusNoContent {
		t.Fatalf("push of a forged event: %d, want 204", code)
	}
	if code := postPush(t, base+app.ConsumerPath("NoSuchConsumer"), forged); code != http.StatusNotFound {
		t.Fatalf("push to an unknown consumer: %d, want 404", code)
	}
	if _, err := record(ctx, a, stream, 3, gcpTestEvent(t, "fourth")); err != nil {
		t.Fatal(err)
	}
	d = waitProjection(t, a, stream, 4)
	if !slices.Equal(d.Notes, []string{"first", "second", "third", "fourth"}) {
		t.Fatalf("read model %+v: the forged event was applied, or the real one was not", d)
	}
}

// TestGCPRelayPublishesStragglers: an event committed without being published (the process died
// in between) is published by the relay and then reaches the projector through Pub/Sub.
func TestGCPRelayPublishesStragglers(t *testing.T) {
	a, _, _ := openGCPApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := "e2e-relay-" + ids.New()
	if _, err := a.Events.Append(ctx, stream, 0, gcpTestEvent(t, "straggler")); err != nil { // no publish
		t.Fatal(err)
	}
	if n, err := relayOnce(ctx, a); err != nil || n != 1 {
		t.Fatalf("relay published %d events (%v), want 1", n, err)
	}
	d := waitProjection(t, a, stream, 1)
	if !slices.Equal(d.Notes, []string{"straggler"}) {
		t.Fatalf("read model %+v, want the straggler", d)
	}
	left, err := a.Events.Unpublished(ctx, 100)
	if err != nil || len(left) != 0 {
		t.Fatalf("after the relay the outbox holds %d events (%v), want none", len(left), err)
	}
}

func postPush(t *testing.T, url string, e events.Envelope) int {
	t.Helper()
	data, _ := json.Marshal(e)
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": data, "messageId": "forged"}, "subscription": "x"})
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
