package functions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
)

// The agent-job reaper settles the jobs that will not settle themselves. A scheduled job (entry
// point AgentJobReaper), one bounded pass per call, safe when two overlap: it reads candidates
// from the read model and decides each on the job's stream.
//
//   - A job queued or running past its time (its timeout_seconds, fixed at creation, from its
//     creation) is failed with AGENT_JOB_TIMEOUT, and so refunded once (the refunder).
//   - A job still "requested" acceptGrace after its creation was left by a request that died
//     between its writes: accepted when the account holds its charge (it then launches),
//     rejected when it does not (it was never charged, and never shown).

// acceptGrace is how long a request may take between recording its job and accepting it.
const acceptGrace = time.Minute

// agentJobReaperEvery is the local period of the reaper.
func agentJobReaperEvery(config.Config) time.Duration { return 30 * time.Second }

// ReapAgentJobs makes one pass: it settles at most limit jobs and says whether more were due.
func ReapAgentJobs(ctx context.Context, a *app.App, limit int) (settled []string, more bool, err error) {
	now := a.Clock.Now()
	var errs []error
	for _, status := range []string{events.AgentJobStatusRequested, events.AgentJobStatusQueued, events.AgentJobStatusRunning} {
		docs, err := listAll[projections.AgentJobDoc](ctx, a, projections.AgentJobCollection, projections.Filter{Field: "status", Value: status})
		if err != nil {
			return settled, false, fmt.Errorf("agent jobs %s: %w", status, err)
		}
		for _, d := range docs {
			if ctx.Err() != nil {
				return settled, false, ctx.Err()
			}
			due := d.CreatedAt.Add(time.Duration(d.TimeoutSeconds) * time.Second)
			if status == events.AgentJobStatusRequested {
				due = d.CreatedAt.Add(acceptGrace)
			}
			if !now.After(due) {
				continue
			}
			if len(settled) >= limit {
				return settled, true, errors.Join(errs...)
			}
			changed, err := settleAgentJob(ctx, a, d.JobID, now)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if changed {
				settled = append(settled, d.JobID)
			}
		}
	}
	return settled, false, errors.Join(errs...)
}

// settleAgentJob decides on job id's stream what the reaper does with it, if anything.
func settleAgentJob(ctx context.Context, a *app.App, id string, now time.Time) (bool, error) {
	j, ok, err := loadAgentJob(ctx, a, id)
	if err != nil || !ok {
		return false, err
	}
	var stored []events.Envelope
	switch {
	case j.Status == events.AgentJobStatusRequested:
		// Read before the decision: a charge that lands after it finds the job rejected, and
		// the request that made it refunds it (chargeAndAccept).
		evs, err := a.Events.Load(ctx, events.AccountStream(j.UserID), 1)
		if err != nil {
			return false, fmt.Errorf("load the account of %s: %w", j.UserID, err)
		}
		acct, err := events.FoldAccount(j.UserID, evs)
		if err != nil {
			return false, err
		}
		_, stored, err = updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
			if charged, ok := acct.JobCharged[id]; ok {
				return j.Accept(ids.New(), now, charged)
			}
			return j.Reject(ids.New(), now, "the request that asked for this job did not finish: it was not charged")
		})
		if errors.Is(err, events.ErrAgentJobRejected) {
			err = nil
		}
		return len(stored) > 0, err
	case j.Live() && now.After(j.CreatedAt.Add(time.Duration(j.TimeoutSeconds)*time.Second)):
		_, stored, err = updateAgentJob(ctx, a, id, func(j *events.AgentJob) ([]events.Envelope, error) {
			return j.Fail(ids.New(), now, events.CodeAgentJobTimeout,
				fmt.Sprintf("the job did not complete within %s of its creation; its charge is refunded", time.Duration(j.TimeoutSeconds)*time.Second))
		})
		return len(stored) > 0, err
	}
	return false, nil
}

// reapAgentJobs is one pass as a scheduled job: it answers the jobs it settled.
func reapAgentJobs(ctx context.Context, a *app.App) (any, error) {
	settled, more, err := ReapAgentJobs(ctx, a, passCap)
	if settled == nil {
		settled = []string{}
	}
	return map[string]any{"settled": settled, "more": more}, err
}
