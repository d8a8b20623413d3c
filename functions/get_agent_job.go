package functions

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// agentJobView is an agent job as the API shows it.
type agentJobView struct {
	JobID           string     `json:"job_id"`
	Repo            string     `json:"repo"`
	Ref             *string    `json:"ref"`
	Commit          *string    `json:"commit"` // the commit analysed, once known
	AgentID         string     `json:"agent_id"`
	Status          string     `json:"status"` // queued, running, completed or error
	ProgressPct     int        `json:"progress_pct"`
	ProgressStage   *string    `json:"progress_stage"`
	ResultAvailable bool       `json:"result_available"`
	ErrorCode       *string    `json:"error_code"`
	ErrorMessage    *string    `json:"error_message"`
	CostCents       int64      `json:"cost_cents"`
	RefundedCents   int64      `json:"refunded_cents"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	CompletedAt     *time.Time `json:"completed_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func viewAgentJob(d projections.AgentJobDoc) agentJobView {
	return agentJobView{
		JobID: d.JobID, Repo: d.Repo, Ref: nonEmpty(d.Ref), Commit: nonEmpty(d.Commit), AgentID: d.AgentID, Status: d.Status,
		ProgressPct: d.ProgressPct, ProgressStage: nonEmpty(d.ProgressStage), ResultAvailable: d.ResultAvailable,
		ErrorCode: nonEmpty(d.ErrorCode), ErrorMessage: nonEmpty(d.ErrorMessage), CostCents: d.CostCents, RefundedCents: d.RefundCents,
		CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, CompletedAt: d.CompletedAt, UpdatedAt: d.UpdatedAt,
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeAgentJob answers job id as the read model holds it, which the inline projector brought
// up to date with the request's own write (the runner's endpoints, which have no caller).
func writeAgentJob(ctx context.Context, a *app.App, w http.ResponseWriter, id string) error {
	d, err := projections.Get[projections.AgentJobDoc](ctx, a.Docs, projections.AgentJobCollection, id)
	if err != nil {
		return fmt.Errorf("agent job %s: %w", id, err)
	}
	httpapi.WriteJSON(w, http.StatusOK, viewAgentJob(d))
	return nil
}

// GetAgentJob answers GET /agent-jobs/{job_id}: the caller's job (another user's is a 404).
func GetAgentJob(a *app.App, w http.ResponseWriter, r *http.Request) error {
	d, err := agentJobOf(r.Context(), a, r.PathValue("job_id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, viewAgentJob(d))
	return nil
}
