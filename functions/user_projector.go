package functions

import (
	"context"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The user projector keeps the user documents and the API-key index. It runs inline, so a key
// created in one request authenticates in the next; the bus's later delivery finds the versions
// already applied and does nothing.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:   "UserProjector",
		Wants:  func(e events.Envelope) bool { return projections.IsUserStream(e.Stream) },
		Handle: projectUser,
		Inline: true,
	})
}

func projectUser(ctx context.Context, a *App, e events.Envelope) error {
	err := projections.ProjectUser(ctx, a.Docs, e, a.Events.Load)
	// After the write, so that the next read sees it.
	if id, _ := identityOf(a); id != nil {
		id.cache.invalidate()
	}
	return err
}
