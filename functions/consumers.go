package functions

import (
	"context"

	"github.com/codeset/codeset/events"
)

// Consumer is a projector or a process manager fed by the bus. Its Name is also its Cloud
// Function name and its Pub/Sub push subscription. Handle sees every event of a stream in order
// (the runner fills gaps from the store and skips what it has already applied), but after a
// crash it may see an event again: it must be idempotent.
type Consumer struct {
	Name   string
	Wants  func(e events.Envelope) bool // nil: every event
	Handle func(ctx context.Context, a *App, e events.Envelope) error
}

// Consumers is every consumer of the system; capability files add theirs from init.
var Consumers []Consumer
