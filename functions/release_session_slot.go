package functions

import (
	"context"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/ids"
)

// releaseSessionSlot is the consumer SessionSlotReleaser: the end of a session, however it came (closed, expired,
// stopped for a spent balance, failed to start, timed out starting), gives back the slot that
// its creation reserved on its user's slots stream (events/session_slots.go). It also runs inline,
// so that a client that closes a session may create another at once; the bus's later delivery,
// or a redelivery after a crash, then finds the slot released and decides nothing.
func releaseSessionSlot(ctx context.Context, a *app.App, e events.Envelope) error {
	reason := "failed"
	if e.Type == events.SessionEnded {
		var d events.SessionEndedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		reason = d.Reason
	}
	return releaseSlot(ctx, a, e.UserID, strings.TrimPrefix(e.Stream, "session-"), reason)
}

// wantsSessionEnd: the events that end a session.
func wantsSessionEnd(e events.Envelope) bool {
	return e.Type == events.SessionEnded || e.Type == events.SessionFailed
}

// releaseSlot frees the slot session holds on user's slots stream, if it holds one.
func releaseSlot(ctx context.Context, a *app.App, user, session, reason string) error {
	_, _, err := app.Update(ctx, a, events.SessionSlotsStream(user), events.SessionSlotsOf, func(s *events.SessionSlots) ([]events.Envelope, error) {
		return s.Release(ids.New(), user, session, a.Clock.Now(), reason)
	})
	return err
}
