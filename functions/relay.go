package functions

import (
	"context"
	"net/http"
	"time"

	"github.com/codeset/codeset/shared/httpapi"
)

// The outbox relay of the GCP backend in `codeset serve`: events whose publish after commit
// failed (Pub/Sub unreachable, the process killed in between) are still unpublished in
// Firestore; this republishes them at start and then on a ticker. The embedded default's bus is
// its own relay. (Consumers are idempotent, so an event the request path is publishing at the
// same moment may go out twice, never zero times.)
func init() {
	Loops = append(Loops, Task{Name: "outbox-relay", Run: func(ctx context.Context, a *App) error {
		if a.Config.Backend != "gcp" {
			return nil
		}
		return a.relayLoop(ctx, RelayInterval)
	}})
	// On GCP the relay is a function that Cloud Scheduler calls (entry point OutboxRelay,
	// registered by the root package).
}

// RelayFunction runs one relay pass on the process's App and answers how many events it
// published.
func RelayFunction(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "method not allowed"))
		return
	}
	a, err := Default()
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	n, err := a.relayOnce(r.Context())
	if err != nil {
		httpapi.WriteError(w, err) // a 500: the scheduler tries again on its next run
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]int{"published": n})
}

// RelayInterval is how often the relay looks for unpublished events.
var RelayInterval = 10 * time.Second

const (
	relayBatch     = 500 // events per relay pass
	relayMaxPasses = 20  // passes per tick: a backlog drains over a few ticks, never in one loop
)

func (a *App) relayLoop(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := a.relayOnce(ctx); err != nil && ctx.Err() == nil {
			a.Logger.WarnContext(ctx, "outbox relay failed; retrying on the next tick", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// relayOnce publishes the backlog of unpublished events, up to relayMaxPasses batches, and
// returns how many it published.
func (a *App) relayOnce(ctx context.Context) (int, error) {
	total := 0
	for range relayMaxPasses {
		n, err := a.Log.Relay(ctx, relayBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n > 0 {
			a.Logger.InfoContext(ctx, "outbox relay republished events", "count", n)
		}
		if n < relayBatch {
			break
		}
	}
	return total, nil
}
