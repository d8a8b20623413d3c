package functions

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/httpapi"
)

// GetAgentJobResult answers GET /agent-jobs/{job_id}/result: the knowledge base as JSON
// ({job_id, repo, ref, commit, files}), read whole from the blob store; ?agent_id= (repeatable)
// keeps only those agents' files. 404 until the job has its result, for another user's job, and
// when no file is for the agents asked for.
func GetAgentJobResult(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	d, err := agentJobOf(ctx, a, r.PathValue("job_id"))
	if err != nil {
		return err
	}
	if d.ResultRef == nil {
		return httpapi.NotFound("the result of agent job " + d.JobID + " (it is " + d.Status + ")")
	}
	ref := blob.Ref{Digest: d.ResultRef.Digest, Size: d.ResultRef.Size}
	raw, err := readResultBlob(ctx, a, ref)
	if err != nil {
		return blobError("the result of agent job "+d.JobID, *d.ResultRef, err)
	}
	var res agentjob.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return httpapi.Errorf(http.StatusInternalServerError, "the result of agent job %s (%s) does not decode: %v", d.JobID, ref.Digest, err)
	}
	if want := r.URL.Query()["agent_id"]; len(want) > 0 {
		res.Files = slices.DeleteFunc(res.Files, func(f agentjob.File) bool { return !slices.Contains(want, f.AgentID) })
		if len(res.Files) == 0 {
			return httpapi.NotFound("a file of agent job " + d.JobID + "'s result for the agents asked for")
		}
	}
	if res.Files == nil {
		res.Files = []agentjob.File{}
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}
