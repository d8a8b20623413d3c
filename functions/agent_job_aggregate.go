package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/httpapi"
	"github.com/codeset/codeset/shared/ids"
)

// What the agent-job endpoints, its launcher, refunder and reaper share about the aggregate
// (events/agent_job.go).

// updateAgentJob changes job id through the write path and returns the job as it stands after.
func updateAgentJob(ctx context.Context, a *app.App, id string, decide func(j *events.AgentJob) ([]events.Envelope, error)) (*events.AgentJob, []events.Envelope, error) {
	return app.Update(ctx, a, events.AgentJobStream(id), events.AgentJobOf, decide)
}

// loadAgentJob folds job id's stream; ok is false when there is no such job.
func loadAgentJob(ctx context.Context, a *app.App, id string) (*events.AgentJob, bool, error) {
	evs, err := a.Events.Load(ctx, events.AgentJobStream(id), 1)
	if err != nil {
		return nil, false, fmt.Errorf("load agent job %s: %w", id, err)
	}
	j, err := events.AgentJobOf(evs)
	return j, err == nil && j.Version > 0, err
}

// agentJobOf is the caller's job id as the read model holds it: a job of another user, one
// never accepted (its request answered 402), or an id that names nothing is the same 404.
func agentJobOf(ctx context.Context, a *app.App, id string) (projections.AgentJobDoc, error) {
	d, err := projections.Get[projections.AgentJobDoc](ctx, a.Docs, projections.AgentJobCollection, id)
	if errors.Is(err, projections.ErrNotFound) || (err == nil && (d.UserID != app.Caller(ctx).UserID || !d.Listed)) {
		return d, httpapi.NotFound("agent job")
	}
	return d, err
}

// agentTable is the configured agents (shared/agentjob.Agents of CODESET_AGENTS).
func agentTable(a *app.App) ([]agentjob.Agent, error) {
	agents, err := agentjob.Agents(a.Config.Agents)
	if err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	return agents, nil
}

// completeAgentJob records a runner's completion of job id, as POST /agent-jobs/{job_id}/
// completion and agentjob.Report both do: the secret compared in constant time (wrong or
// missing: 403, nothing written), the result read back from the blob store (a completion
// "completed" without a readable result fails the job and refunds it), then the decision on
// the job's stream, where an identical repeat changes nothing and another completion of an
// ended job is a 409. It returns the job as it stands after.
func completeAgentJob(ctx context.Context, a *app.App, id, secret string, c events.AgentJobCompletion, result *blob.Ref) (*events.AgentJob, error) {
	j, ok, err := loadAgentJob(ctx, a, id)
	if err != nil {
		return nil, err
	}
	// The same answer for a job that does not exist as for a wrong secret: the caller has no
	// user, so the endpoint must not tell job ids apart.
	if !ok || !j.SecretMatches(secret) {
		return nil, httpapi.Errorf(http.StatusForbidden, "wrong or missing completion secret")
	}
	if c.Outcome != events.OutcomeCompleted && c.Outcome != events.OutcomeError {
		return nil, httpapi.Invalid("enum", "Input should be 'completed' or 'error'", "body", "outcome")
	}
	if j.Ended() {
		// Decided without the result: a repeat answers the job as it is.
		return decideCompletion(ctx, a, j, c, nil, "", "")
	}
	var ref *events.BlobRef
	var commit, why string
	if c.Outcome == events.OutcomeCompleted {
		r, res, reason, err := readResult(ctx, a, id, result)
		if err != nil {
			return nil, err
		}
		ref, why = r, reason
		if res != nil {
			commit = res.Commit
		}
	}
	return decideCompletion(ctx, a, j, c, ref, commit, why)
}

func decideCompletion(ctx context.Context, a *app.App, j *events.AgentJob, c events.AgentJobCompletion, ref *events.BlobRef, commit, why string) (*events.AgentJob, error) {
	after, _, err := app.Update(ctx, a, events.AgentJobStream(j.JobID), events.AgentJobOf, func(j *events.AgentJob) ([]events.Envelope, error) {
		return j.Complete(ids.New(), a.Clock.Now(), c, ref, commit, why)
	}, app.From(j))
	switch {
	case errors.Is(err, events.ErrAgentJobConflict):
		return nil, httpapi.Conflict(fmt.Sprintf("agent job %s has already ended (%s) otherwise than this completion says", j.JobID, after.Status))
	case err != nil:
		return nil, err
	}
	return after, nil
}

// maxResult bounds the knowledge base read back: instruction files for a handful of agents.
const maxResult = 32 << 20

// readResult finds job id's result in the blob store: at ref when the runner stored it there
// itself, else the object the job's upload URL named (blob.Inbox, Cloud Storage). It answers
// the result's ref and content, or nil and why there is none (a completion "completed" then
// fails the job: RESULT_NOT_STORED); an error only when the store could not be asked, so that
// the runner's retry, or the timeout, decides later rather than a refund on a hiccup.
func readResult(ctx context.Context, a *app.App, id string, ref *blob.Ref) (*events.BlobRef, *agentjob.Result, string, error) {
	if a.Blobs == nil {
		return nil, nil, "this server has no blob store", nil
	}
	if inbox, ok := a.Blobs.(blob.Inbox); ok {
		collected, err := inbox.Collect(ctx, resultUploadName(id))
		switch {
		case err == nil:
			if ref != nil && *ref != collected {
				return nil, nil, fmt.Sprintf("the uploaded result (%s) is not the one the completion names (%s)", collected.Digest, ref.Digest), nil
			}
			ref = &collected
		case errors.Is(err, blob.ErrNotFound):
			// Nothing uploaded: the runner may have stored it by content itself.
		default:
			return nil, nil, "", fmt.Errorf("collect the result of %s: %w", id, err)
		}
	}
	if ref == nil {
		return nil, nil, "the runner reported completed but stored no result", nil
	}
	raw, err := readResultBlob(ctx, a, *ref)
	switch {
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrCorrupt):
		return nil, nil, fmt.Sprintf("the result %s is not in the blob store: %v", ref.Digest, err), nil
	case err != nil:
		return nil, nil, "", fmt.Errorf("read the result of %s: %w", id, err)
	}
	var res agentjob.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, nil, fmt.Sprintf("the result %s is not a knowledge base (JSON {job_id, repo, ref, commit, files}): %v", ref.Digest, err), nil
	}
	if res.JobID != id {
		return nil, nil, fmt.Sprintf("the result %s is job %q's, not this job's", ref.Digest, res.JobID), nil
	}
	return &events.BlobRef{Digest: ref.Digest, Size: ref.Size}, &res, "", nil
}

// readResultBlob reads ref whole, at most maxResult bytes, checked against its digest.
func readResultBlob(ctx context.Context, a *app.App, ref blob.Ref) ([]byte, error) {
	if ref.Size > maxResult {
		return nil, fmt.Errorf("%w: %d bytes, more than a knowledge base may hold (%d)", blob.ErrCorrupt, ref.Size, maxResult)
	}
	rc, err := a.Blobs.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(rc, maxResult+1)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// resultUploadName is the object a job's runner uploads its result to, when the blob store
// takes uploads by signed URL (blob.Inbox): named for the job, so that the core finds it
// without being told.
func resultUploadName(jobID string) string { return "agent-jobs/" + jobID + "/result.json" }

// reportAgentJob is the App's agentjob.Report (Wiring.AgentJobReport): a runner that watches
// its jobs reports their end through the completion's own code.
func reportAgentJob(ctx context.Context, a *app.App, jobID, secret, outcome, errorMessage string, result *blob.Ref) error {
	_, err := completeAgentJob(ctx, a, jobID, secret, events.AgentJobCompletion{Outcome: outcome, ErrorMessage: errorMessage}, result)
	return err
}

// refundAgentJob gives back on the account what a failed job carries to refund. It is a
// consumer of agent_job.failed (inline, so that the completion's answer and the balance agree
// at once; the bus redelivers it after a crash): the job decided the refund once, and the
// account's decision, keyed by job id, never pays it twice.
func refundAgentJob(ctx context.Context, a *app.App, e events.Envelope) error {
	var d events.AgentJobFailedData
	if err := e.Decode(&d); err != nil {
		return err
	}
	if d.RefundCents <= 0 {
		return nil
	}
	jobID := strings.TrimPrefix(e.Stream, events.AgentJobStreamPrefix)
	_, err := updateAccount(ctx, a, e.UserID, func(acct *events.Account) ([]events.Envelope, error) {
		return acct.RefundAgentJob(events.AgentJobRefundedData{JobID: jobID, AmountCents: d.RefundCents, Reason: d.Error.Code}, e.OccurredAt)
	})
	return err
}

// wantsAgentJobFailure: the refunder's events.
func wantsAgentJobFailure(e events.Envelope) bool { return e.Type == events.AgentJobFailed }

// projectAgentJob keeps the agent-job read model. It is inline, so the job POST answers is
// readable at once, and so is every step after.
func projectAgentJob(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, events.AgentJobStreamPrefix)
	return projections.ProjectStream(ctx, a.Docs, projections.AgentJobCollection, id, e, projections.ApplyAgentJob, a.Events.Load)
}
