package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/httpapi"
)

// agentJobCompletionRequest is the spec's AgentJobCompletionRequest plus result_ref, what the
// runner's result upload holds (shared/agentjob.CompletionRequest). The secret is not
// "required" in the decoding: a missing secret is a wrong one, a 403 like any other.
type agentJobCompletionRequest struct {
	Secret       string    `json:"secret"`
	Outcome      string    `json:"outcome" required:"true"`
	ErrorMessage *string   `json:"error_message"`
	ResultRef    *blob.Ref `json:"result_ref"`
}

// maxErrorMessage bounds the message a runner may store on a job.
const maxErrorMessage = 4096

// AgentJobCompletion answers POST /agent-jobs/{job_id}/completion, the runner's report of how a
// job ended. The route is public (the runner has no user); the completion secret, given only
// to the runner, is the credential. See completeAgentJob.
func AgentJobCompletion(a *app.App, w http.ResponseWriter, r *http.Request) error {
	var req agentJobCompletionRequest
	if err := httpapi.Decode(r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	c := events.AgentJobCompletion{Outcome: req.Outcome}
	if req.ErrorMessage != nil {
		c.ErrorMessage = *req.ErrorMessage
	}
	if len(c.ErrorMessage) > maxErrorMessage {
		return httpapi.Invalid("string_too_long", "error_message should have at most 4096 characters", "body", "error_message")
	}
	j, err := completeAgentJob(r.Context(), a, r.PathValue("job_id"), req.Secret, c, req.ResultRef)
	if err != nil {
		return err
	}
	return writeAgentJob(r.Context(), a, w, j.JobID)
}
