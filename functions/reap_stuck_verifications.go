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
)

// The stuck-verification reaper records as failed (VERIFIER_INTERRUPTED) the verification
// requests nothing took up within pendingLimit, and the verifications started longer ago than
// their timeout allows, with a generous margin, and still without a result: whatever was running them stopped (on GCP an instance gone mid-run; locally a restart,
// which the start-up recovery settles at once). It reads the start and the timeout from the
// job's stream, never from anything held in memory, so any instance may run it. A scheduled
// job (entry point StuckVerificationReaper).

// stuckMargin is how long past its timeout and the verifier's grace (verifyGrace) a job may go
// without a result before it is taken as interrupted.
const stuckMargin = 10 * time.Minute

// pendingLimit is how long a verification request may wait to be taken up by the verifier: its
// delivery is retried with backoff for minutes, then dead-lettered, after which nothing would
// ever take it.
const pendingLimit = 15 * time.Minute

// stuckEvery is the local period of the reaper.
func stuckEvery(config.Config) time.Duration { return time.Minute }

// ReapStuckVerifications makes one pass: it fails at most limit stuck jobs and says whether more
// were due. A job that completes meanwhile, or that another pass fails first, is left as it is:
// the failure is decided on the job's stream.
func ReapStuckVerifications(ctx context.Context, a *app.App, limit int) ([]string, bool, error) {
	now := a.Clock.Now()
	var failed []string
	var errs []error
	for _, status := range []string{events.JobPending, events.JobStarting, events.JobRunning} {
		docs, err := listAll[projections.VerificationDoc](ctx, a, projections.VerificationCollection,
			projections.Filter{Field: "status", Value: status})
		if err != nil {
			return failed, false, fmt.Errorf("verifications %s: %w", status, err)
		}
		for _, d := range docs {
			if ctx.Err() != nil {
				return failed, false, ctx.Err()
			}
			// The read model may lag or be wrong: the stream decides.
			v, ok, err := loadVerification(ctx, a, d.JobID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var msg string
			switch limitAfter := stuckAfter(a, v); {
			case !ok:
				continue
			case v.Status == events.JobPending && now.Sub(v.CreatedAt) > pendingLimit:
				msg = fmt.Sprintf("the verification request was not taken up within %s (its delivery to the verifier failed); start a new verification", pendingLimit)
			case (v.Status == events.JobStarting || v.Status == events.JobRunning) && now.Sub(v.StartedAt) > limitAfter:
				msg = fmt.Sprintf("no result was recorded within %s of the verification's start (its timeout, plus %s): what was running it stopped; start a new verification",
					limitAfter, verifyGrace+stuckMargin)
			default:
				continue
			}
			if len(failed) >= limit {
				return failed, true, errors.Join(errs...)
			}
			if err := failJob(ctx, a, d.JobID, events.CodeVerifierInterrupted, msg); err != nil {
				errs = append(errs, err)
				continue
			}
			failed = append(failed, d.JobID)
			// An oracle may still run (or hold its result) with nobody waiting for it.
			if s, found, err := loadSession(ctx, a, v.SessionID); err == nil && found && v.Status != events.JobPending && a.Sandboxes != nil {
				if err := a.Sandboxes.StopVerify(ctx, a.SandboxInfo(s.SessionID, s.Sandbox), sandboxSpec(a, s, s.Env), d.JobID); err != nil {
					errs = append(errs, fmt.Errorf("stop the oracle of job %s: %w", d.JobID, err))
				}
			}
		}
	}
	return failed, false, errors.Join(errs...)
}

// stuckAfter is how long after its start job v is taken as interrupted.
func stuckAfter(a *app.App, v events.Verification) time.Duration {
	timeout := time.Duration(v.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = a.Config.VerifyTimeout
	}
	return timeout + verifyGrace + stuckMargin
}

// reapStuckVerifications is one pass as a scheduled job: it answers the jobs it failed.
func reapStuckVerifications(ctx context.Context, a *app.App) (any, error) {
	failed, more, err := ReapStuckVerifications(ctx, a, passCap)
	if failed == nil {
		failed = []string{}
	}
	return map[string]any{"failed": failed, "more": more}, err
}
