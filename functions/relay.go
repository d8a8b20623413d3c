package functions

import (
	"context"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/config"
)

// The outbox relay: events whose publish after commit failed (Pub/Sub unreachable, the process
// killed in between) are still unpublished in Firestore; this republishes them. On GCP Cloud
// Scheduler calls it (entry point OutboxRelay); `codeset serve --backend gcp` runs it at start
// and then on a ticker. The embedded default's bus is its own relay. (Consumers are idempotent,
// so an event the request path is publishing at the same moment may go out twice, never zero
// times.)

// RelayInterval is how often the relay looks for unpublished events.
var RelayInterval = 10 * time.Second

const (
	relayBatch     = 500 // events per relay pass
	relayMaxPasses = 20  // passes per tick: a backlog drains over a few ticks, never in one loop
)

// relayOnce publishes the backlog of unpublished events, up to relayMaxPasses batches, and
// returns how many it published.
func relayOnce(ctx context.Context, a *app.App) (int, error) {
	total := 0
	for range relayMaxPasses {
		n, err := a.Relay(ctx, relayBatch)
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

// relayEvery is the relay's local period: only the GCP backend needs one.
func relayEvery(cfg config.Config) time.Duration {
	if cfg.Backend != "gcp" {
		return 0
	}
	return RelayInterval
}

// relay is the relay as a scheduled job: it answers how many events it published.
func relay(ctx context.Context, a *app.App) (any, error) {
	n, err := relayOnce(ctx, a)
	return map[string]int{"published": n}, err
}
