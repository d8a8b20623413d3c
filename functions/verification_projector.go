package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// projectVerification keeps the verification job read model. It is inline, so the job that
// POST verify answers is readable at once, and so is each step the verifier records.
func projectVerification(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, events.VerificationStreamPrefix)
	return projections.ProjectStream(ctx, a.Docs, projections.VerificationCollection, id, e, projections.ApplyVerification, a.Events.Load)
}
