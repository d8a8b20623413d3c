package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// The verification projector keeps the verification job read model. It is inline, so the job
// that POST verify answers is readable at once, and so is each step the verifier records.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:   "ProjectVerifications",
		Wants:  projections.IsVerificationEvent,
		Inline: true,
		Handle: func(ctx context.Context, a *App, e events.Envelope) error {
			id := strings.TrimPrefix(e.Stream, events.VerificationStreamPrefix)
			return projections.ProjectStream(ctx, a.Docs, projections.VerificationCollection, id, e, projections.ApplyVerification, a.Events.Load)
		},
	})
}
