package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

type createSessionRequest struct {
	Dataset    string `json:"dataset" required:"true"`
	SampleID   string `json:"sample_id" required:"true"`
	TTLMinutes *int   `json:"ttl_minutes"`
}

// defaultTTLMinutes is the spec's default time to live.
const defaultTTLMinutes = 30

// CreateSession answers POST /sessions: it checks the sample and the balance, reserves one of the
// user's session slots (the active-session limit, decided on the user's slots stream), records
// the request and answers 201 at once with status creating; the provisioner starts the sandbox.
func CreateSession(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req createSessionRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	ttl := defaultTTLMinutes
	if req.TTLMinutes != nil {
		ttl = *req.TTLMinutes
	}
	if ttl < events.MinTTLMinutes {
		return httpapi.Invalid("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", events.MinTTLMinutes), "body", "ttl_minutes")
	}
	if ttl > events.MaxTTLMinutes {
		return httpapi.Invalid("less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", events.MaxTTLMinutes), "body", "ttl_minutes")
	}
	ctx := r.Context()
	user := app.Caller(ctx).UserID
	sample, err := projections.Sample(ctx, a.Docs, req.Dataset, req.SampleID)
	switch {
	case errors.Is(err, projections.ErrUnknownDataset):
		return httpapi.NotFound(fmt.Sprintf("dataset %q", req.Dataset))
	case errors.Is(err, projections.ErrUnknownSample):
		return httpapi.NotFound(fmt.Sprintf("sample %q in dataset %q", req.SampleID, req.Dataset))
	case err != nil:
		return err
	}
	if err := RequirePositiveBalance(ctx, a, user); err != nil {
		return err
	}

	id := ids.Prefixed("sess")
	e, err := events.RequestSession(ids.New(), events.SessionRequestedData{
		SessionID: id, UserID: user, Dataset: req.Dataset, SampleID: req.SampleID,
		SampleVersion: sample.Version, TTLMinutes: ttl, RequestedAt: a.Clock.Now(),
		CentsPerMinute: a.Config.CostPerMinuteCents, Env: sample.Environment,
	})
	if err != nil {
		return httpapi.Invalid("value_error", err.Error(), "body", "ttl_minutes")
	}
	var d events.SessionRequestedData
	if err := e.Decode(&d); err != nil {
		return err
	}
	if err := reserveSlot(ctx, a, d); err != nil {
		return err
	}
	if _, err := app.Create(ctx, a, events.SessionStream(id), []events.Envelope{e}); err != nil {
		return errors.Join(err, unreserveSlot(context.WithoutCancel(ctx), a, d))
	}
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{
		"session_id":   id,
		"status":       events.StatusCreating,
		"requested_at": d.RequestedAt.Format(time.RFC3339Nano),
		"expires_at":   d.ExpiresAt.Format(time.RFC3339Nano),
	})
	return nil
}

// reserveSlot takes one of the user's session slots for the session requested, or answers 429
// when the user holds as many active sessions as the configuration allows.
func reserveSlot(ctx context.Context, a *app.App, d events.SessionRequestedData) error {
	// Without a flush of its own: the session's request, appended durably next, flushes it with
	// it (the log keeps its order), and a reservation lost to a power cut before that held a slot
	// for a session that was never recorded either.
	slots, _, err := app.Update(ctx, a, events.SessionSlotsStream(d.UserID), events.SessionSlotsOf, func(s *events.SessionSlots) ([]events.Envelope, error) {
		return s.Reserve(ids.New(), d.UserID, d.SessionID, d.RequestedAt, d.ExpiresAt, a.Config.MaxActiveSessions)
	}, app.WithoutSync())
	if errors.Is(err, events.ErrSessionLimit) {
		return httpapi.Errorf(http.StatusTooManyRequests, "you have %d active sessions, the most allowed; close one (DELETE /sessions/{session_id}) before creating another", slots.Held(d.RequestedAt))
	}
	return err
}

// unreserveSlot gives back the slot of a session whose request could not be recorded, unless the
// session's stream holds it after all (an append may fail after its commit). Should this fail
// too, the reservation lapses by itself (events.SlotReleaseGrace).
func unreserveSlot(ctx context.Context, a *app.App, d events.SessionRequestedData) error {
	v, err := a.Events.Version(ctx, events.SessionStream(d.SessionID))
	if err != nil || v > 0 {
		return err
	}
	return releaseSlot(ctx, a, d.UserID, d.SessionID, events.SlotReleaseNotCreated)
}
