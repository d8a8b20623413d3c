package functions

import (
	"net/http"
	"unicode/utf8"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

// agentJobProgressRequest is shared/agentjob.ProgressRequest.
type agentJobProgressRequest struct {
	Secret        string `json:"secret"`
	ProgressPct   *int   `json:"progress_pct" required:"true"`
	ProgressStage string `json:"progress_stage"`
}

// maxProgressStage bounds a stage's name.
const maxProgressStage = 200

// AgentJobProgress answers POST /agent-jobs/{job_id}/progress, an extension of this server
// (documented in the served openapi.json): the runner's report of how far a running job got,
// with its completion secret (wrong or missing: 403, nothing changes). A report after the end,
// or one that changes nothing, is answered with the job as it is.
func AgentJobProgress(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req agentJobProgressRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	id := r.PathValue("job_id")
	j, ok, err := loadAgentJob(ctx, a, id)
	if err != nil {
		return err
	}
	if !ok || !j.SecretMatches(req.Secret) {
		return httpapi.Errorf(http.StatusForbidden, "wrong or missing completion secret")
	}
	if *req.ProgressPct < 0 || *req.ProgressPct > 100 {
		return httpapi.Invalid("less_than_equal", "progress_pct should be between 0 and 100", "body", "progress_pct")
	}
	if utf8.RuneCountInString(req.ProgressStage) > maxProgressStage {
		return httpapi.Invalid("string_too_long", "progress_stage should have at most 200 characters", "body", "progress_stage")
	}
	if _, _, err := app.Update(ctx, a, events.AgentJobStream(id), events.AgentJobOf, func(j *events.AgentJob) ([]events.Envelope, error) {
		return j.Progress(ids.New(), a.Clock.Now(), *req.ProgressPct, req.ProgressStage)
	}, app.From(j)); err != nil {
		return err
	}
	return writeAgentJob(ctx, a, w, id)
}
