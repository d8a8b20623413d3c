package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// projectSession keeps the sessions read model. It runs inline, so GET right after POST sees the
// session; the bus's later delivery of the same event changes nothing. ProjectStream keeps the
// document's stream version: no runner checkpoint needed.
func projectSession(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, "session-")
	return projections.ProjectStream(ctx, a.Docs, projections.SessionCollection, id, e, projections.ApplySession, a.Events.Load)
}
