package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// projectCatalog turns dataset streams into the dataset and sample documents. Inline, so a
// command that records catalog events reads them back at once, and the bus's later delivery
// finds them applied.
func projectCatalog(ctx context.Context, a *app.App, e events.Envelope) error {
	return projections.ApplyCatalog(ctx, a.Docs, a.Events, e)
}

// projectCatalogBatch is the catalog projector inline: an import's batch in one go, applied
// before it is published, so that the bus's deliveries find it applied and skip it instead of
// racing this projection on the same documents (which Firestore makes slow).
func projectCatalogBatch(ctx context.Context, a *app.App, evs []events.Envelope) error {
	return projections.ApplyCatalog(ctx, a.Docs, a.Events, evs...)
}

// wantsCatalog: the catalog projector's events.
func wantsCatalog(e events.Envelope) bool {
	return strings.HasPrefix(e.Stream, events.DatasetStreamPrefix)
}
