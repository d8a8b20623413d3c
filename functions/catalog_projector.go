package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The catalog projector: dataset streams -> the dataset and sample documents. Inline, so a
// command that records catalog events reads them back at once; the importer applies its batches
// itself (ImportDataset) and the bus's later delivery finds them applied.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:   "ProjectCatalog",
		Inline: true,
		Wants:  func(e events.Envelope) bool { return strings.HasPrefix(e.Stream, events.DatasetStreamPrefix) },
		Handle: func(ctx context.Context, a *App, e events.Envelope) error {
			return projections.ApplyCatalog(ctx, a.Docs, a.Events, e)
		},
	})
}
