package functions

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// execSettle is how long the projector lets a new command run before it writes its document.
// Most commands an agent runs finish within it, and their request, claim and result then cost
// one write instead of three, none of them while the command runs. Nobody reads a stale
// document meanwhile: until the document exists, GET interaction folds the stream itself.
const execSettle = 20 * time.Millisecond

// projectInteraction keeps the interactions read model, inline like the session one, and wakes
// the requests waiting on an interaction (GET ?wait=N) when it completes. The document keeps its
// stream version: no runner checkpoint needed.
func projectInteraction(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, "interaction-")
	settled := e.Type == events.ExecRequested
	if settled {
		t := time.NewTimer(execSettle)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	// A read first: the deliveries that follow a caught-up one find their event applied and
	// take no write.
	d, err := projections.Get[projections.InteractionDoc](ctx, a.Docs, projections.InteractionCollection, id)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return err
	}
	switch {
	case d.Version >= e.Version: // applied already
	case settled: // the whole stream as it stands now, in one write
		err = projections.CatchUp(ctx, a.Docs, projections.InteractionCollection, id, e.Stream, d.Version, projections.ApplyInteraction, a.Events.Load)
	default:
		err = projections.ProjectStream(ctx, a.Docs, projections.InteractionCollection, id, e, projections.ApplyInteraction, a.Events.Load)
	}
	if err != nil {
		return err
	}
	if e.Type == events.ExecCompleted || e.Type == events.StringReplaced || e.Type == events.FileUploaded {
		a.Completions.Notify(id, nil)
	}
	return nil
}
