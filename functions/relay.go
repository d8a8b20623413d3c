package functions

import (
	"context"
	"time"
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
		a.relayOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// relayOnce publishes the backlog of unpublished events, up to relayMaxPasses batches.
func (a *App) relayOnce(ctx context.Context) {
	for range relayMaxPasses {
		n, err := a.Log.Relay(ctx, relayBatch)
		if err != nil {
			if ctx.Err() == nil {
				a.Logger.WarnContext(ctx, "outbox relay failed; retrying on the next tick", "error", err.Error())
			}
			return
		}
		if n > 0 {
			a.Logger.InfoContext(ctx, "outbox relay republished events", "count", n)
		}
		if n < relayBatch {
			return
		}
	}
}
