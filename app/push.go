package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/pubsub"
)

// ConsumerPath is where Pub/Sub pushes the deliveries of the consumer named name, on the App's
// mux (`codeset serve --backend gcp`).
func ConsumerPath(name string) string { return "/_consumers/" + name }

// mountConsumers serves POST /_consumers/{name}: the push endpoint of every consumer.
func (a *App) mountConsumers(mux *http.ServeMux) {
	mux.HandleFunc("POST "+ConsumerPath("{name}"), func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if _, err := a.Wiring.consumer(name); err != nil {
			// Not the message's fault: keep it (Pub/Sub retries, then dead-letters it).
			httpapi.WriteError(w, httpapi.NotFound("consumer"))
			return
		}
		a.pushHandler(name).ServeHTTP(w, r)
	})
}

// pushHandler decodes a Pub/Sub push delivery for consumer name and delivers it.
func (a *App) pushHandler(name string) http.Handler {
	return pubsub.PushHandler(a.Logger, func(ctx context.Context, e events.Envelope) error {
		return a.deliverPushed(ctx, name, e)
	})
}

// deliverPushed hands the stored event named by a pushed message to consumer name. The message
// only says which event: what is applied is the event as stored (and upcast), so a forged or
// stale message on a reachable endpoint cannot put anything into a read model.
func (a *App) deliverPushed(ctx context.Context, name string, e events.Envelope) error {
	stored, err := a.Events.Load(ctx, e.Stream, e.Version)
	if err != nil {
		return fmt.Errorf("load %s@%d: %w", e.Stream, e.Version, err) // redeliver
	}
	if len(stored) == 0 || stored[0].Version != e.Version || stored[0].ID != e.ID {
		return fmt.Errorf("%s@%d (id %s) is not in the event store: %w", e.Stream, e.Version, e.ID, pubsub.ErrUndeliverable)
	}
	return a.Deliver(ctx, name, stored[0])
}
