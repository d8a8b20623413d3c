package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// At start of `codeset serve`, sandboxes of the previous run are never leaked: a ready session
// whose sandbox still answers is reattached (its agent is reached from the address recorded in the
// session), any other is ended and billed up to now; commands that were running when the server
// stopped are waited for again (their agent ran them on its own).

// RecoverSandboxes reattaches or ends the ready sessions of a previous run.
func RecoverSandboxes(ctx context.Context, a *app.App) error {
	if d, ok := a.Sandboxes.(interface{ Describe() string }); ok {
		a.Logger.InfoContext(ctx, "sandboxes: "+d.Describe())
	}
	if d, ok := a.Sandboxes.(interface{ DescribeLimits() string }); ok {
		a.Logger.InfoContext(ctx, "sandboxes: "+d.DescribeLimits())
	}
	now := a.Clock.Now()
	var errs []error
	reattached, ended := 0, 0
	err := eachActiveSession(ctx, a, func(d projections.SessionDoc) {
		if d.Status != events.StatusReady || d.Sandbox == nil {
			return // creating: the provisioner's redelivery or the reaper settles it
		}
		if now.Before(d.ExpiresAt) && a.Sandboxes != nil && a.Sandboxes.Alive(ctx, a.SandboxInfo(d.SessionID, *d.Sandbox)) {
			reattached++
			return
		}
		at, reason := now, events.EndError
		if !now.Before(d.ExpiresAt) {
			at, reason = d.ExpiresAt, events.EndExpired
		}
		if _, err := endSession(ctx, a, d.SessionID, reason, at); err != nil {
			errs = append(errs, err)
			return
		}
		ended++
	})
	errs = append(errs, err, resumeCommands(ctx, a))
	if reattached+ended > 0 {
		a.Logger.InfoContext(ctx, "sessions of the previous run", "reattached", reattached, "ended", ended)
	}
	return errors.Join(errs...)
}

// resumeCommands settles the commands that were running when the server stopped. Their agent
// ran them on its own: a reattached sandbox's agent still has them, running or with their
// result. So each is handed over (exec running), and the executor waits for it again; one whose
// agent no longer knows it (it died with its sandbox, or was never sent) is recorded as lost then,
// and one whose session was ended above as interrupted by its end.
func resumeCommands(ctx context.Context, a *app.App) error {
	// The claim may not be projected yet ("pending" in the read model): the stream decides.
	var docs []projections.InteractionDoc
	for _, status := range []string{events.InteractionPending, events.InteractionProcessing} {
		some, err := listAll[projections.InteractionDoc](ctx, a, projections.InteractionCollection, projections.Filter{Field: "status", Value: status})
		if err != nil {
			return fmt.Errorf("running commands: %w", err)
		}
		docs = append(docs, some...)
	}
	for _, d := range docs {
		stream := events.InteractionStream(d.InteractionID)
		evs, err := a.Events.Load(ctx, stream, 1)
		if err != nil {
			return err
		}
		it, ok, err := events.FoldInteraction(evs)
		if err != nil || !ok || it.Status != events.InteractionProcessing {
			continue
		}
		if err := handOver(ctx, a, it); err != nil {
			return err
		}
	}
	return nil
}
