package functions

import (
	"context"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// projectUser keeps the user documents and the API-key index. It runs inline, so a key created
// in one request authenticates in the next; the bus's later delivery finds the versions already
// applied and does nothing.
func projectUser(ctx context.Context, a *app.App, e events.Envelope) error {
	err := projections.ProjectUser(ctx, a.Docs, e, a.Events.Load)
	// After the write, so that the next read sees it.
	if a.Identity != nil {
		a.Identity.Cache.Invalidate()
	}
	return err
}

// wantsUser: the user projector's events.
func wantsUser(e events.Envelope) bool { return projections.IsUserStream(e.Stream) }
