package functions

import (
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

// CreateSession answers POST /sessions: it checks the sample, the balance and the user's limit,
// records the request and answers 201 at once with status creating; the provisioner starts the
// sandbox.
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

	defer a.LockUser(user)()
	active, err := a.Docs.Count(ctx, projections.SessionCollection,
		projections.Filter{Field: "user_id", Value: user}, projections.Filter{Field: "active", Value: true})
	if err != nil {
		return fmt.Errorf("count active sessions: %w", err)
	}
	if int64(active) >= a.Config.MaxActiveSessions {
		return httpapi.Errorf(http.StatusTooManyRequests, "you have %d active sessions, the most allowed; close one (DELETE /sessions/{session_id}) before creating another", active)
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
	stored, err := app.Create(ctx, a, events.SessionStream(id), []events.Envelope{e})
	if err != nil {
		return err
	}
	var d events.SessionRequestedData
	if err := stored[0].Decode(&d); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{
		"session_id":   id,
		"status":       events.StatusCreating,
		"requested_at": d.RequestedAt.Format(time.RFC3339Nano),
		"expires_at":   d.ExpiresAt.Format(time.RFC3339Nano),
	})
	return nil
}
