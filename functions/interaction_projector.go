package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The interaction projector keeps the interactions read model, inline like the session one, and
// wakes the requests waiting on an interaction (GET ?wait=N) when it completes.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:   "ProjectInteractions",
		Wants:  projections.IsInteractionEvent,
		Inline: true,
		// ProjectStream keeps the document's stream version: no runner checkpoint needed.
		SelfVersioned: true,
		Handle: func(ctx context.Context, a *App, e events.Envelope) error {
			id := strings.TrimPrefix(e.Stream, "interaction-")
			if err := projections.ProjectStream(ctx, a.Docs, projections.InteractionCollection, id, e, projections.ApplyInteraction, a.Events.Load); err != nil {
				return err
			}
			if e.Type != events.ExecRequested && e.Type != events.ExecStarted {
				completions.notify(id)
			}
			return nil
		},
	})
}
