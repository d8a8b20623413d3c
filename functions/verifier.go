package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/grading"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// The verifier is the process manager of verification jobs; it keeps no state of its own (the
// job's stream and the runtime hold it all), so any instance may take any delivery. On a request it claims the job
// (verification started, at the stream's version: a duplicate delivery finds the claim or loses
// the race and never runs the oracle twice) and has the runtime start the oracle on the
// session's changes, in a fresh sandbox of its own (the session's sandbox is only read), where
// it runs on its own under the job's id. A delivery waits for it at most the configured delivery
// wait; if it runs on, the delivery records that it does (verification still running) and hands
// the wait to the delivery of that event, on whichever instance. The delivery that sees the end
// parses and grades the reports and records the result, or an error with a code, then stops the
// oracle. When a session ends, its unfinished jobs are cancelled and their oracles stopped, from
// whichever instance gets the event; a waiting delivery also reads the job's stream every few
// seconds, and stops an oracle whose job ended.

// handleVerifier is the verifier's consumer: a request runs the job, a hand-over waits for it
// again, a session's end cancels its jobs.
func handleVerifier(ctx context.Context, a *app.App, e events.Envelope) error {
	switch e.Type {
	case events.SessionEnded:
		return cancelVerifications(ctx, a, strings.TrimPrefix(e.Stream, "session-"))
	case events.VerificationStillRunning:
		return awaitVerification(ctx, a, e)
	}
	return runVerification(ctx, a, strings.TrimPrefix(e.Stream, events.VerificationStreamPrefix))
}

// wantsVerifier: the verifier's events.
func wantsVerifier(e events.Envelope) bool {
	return e.Type == events.VerificationRequested || e.Type == events.VerificationStillRunning || e.Type == events.SessionEnded
}

// verifyGrace is how long past the verifier's timeout the job waits for the oracle (reading the
// changes, starting the oracle sandbox, the test patch, collecting the reports) before it errors
// with VERIFIER_TIMEOUT.
const verifyGrace = 2 * time.Minute

// watchEvery is how often a waiting delivery reads the job's stream, to stop the oracle of a job
// cancelled meanwhile by another instance.
const watchEvery = 2 * time.Second

// oracleRun is what a job's oracle is known by, and what grading its result needs.
type oracleRun struct {
	jobID   string
	session events.Session
	env     events.Environment
	sample  projections.SampleDoc
	info    sandbox.Info
	spec    sandbox.Spec
	timeout time.Duration
}

// oracleOf is the oracle run of job v, whose session is s; ok is false when the job has failed
// for it (its sample is no longer in the catalog).
func oracleOf(ctx context.Context, a *app.App, v events.Verification, s events.Session) (oracleRun, bool, error) {
	sample, err := projections.SampleVersion(ctx, a.Docs, s.Dataset, s.SampleID, s.SampleVersion)
	if errors.Is(err, projections.ErrNotFound) {
		return oracleRun{}, false, failJob(ctx, a, v.JobID, events.CodeSampleNotFound, fmt.Sprintf("sample %s/%s version %d is not in the catalog: %v", s.Dataset, s.SampleID, s.SampleVersion, err))
	}
	if err != nil {
		return oracleRun{}, false, err
	}
	// The session's environment is the one its sandbox was built from.
	env := s.Env
	if env.VerifierCommand == "" {
		env = sample.Environment
	}
	timeout := time.Duration(v.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = a.Config.VerifyTimeout
	}
	return oracleRun{jobID: v.JobID, session: s, env: env, sample: sample, info: a.SandboxInfo(s.SessionID, s.Sandbox),
		spec: sandboxSpec(a, s, env), timeout: timeout}, true, nil
}

func runVerification(ctx context.Context, a *app.App, jobID string) error {
	v, ok, err := loadVerification(ctx, a, jobID)
	if err != nil || !ok || v.Status != events.JobPending {
		return err // nothing to do: unknown, or already claimed by an earlier delivery
	}
	// What can still be retried is read before the claim; after it, every outcome is recorded.
	s, found, err := loadSession(ctx, a, v.SessionID)
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	switch {
	case found && s.Done():
		return cancelJob(ctx, a, jobID, fmt.Sprintf("the session ended (status %s) before the verification ran", s.Status))
	case found && errors.Is(s.CanRun(now), events.ErrSessionExpired):
		return cancelJob(ctx, a, jobID, "the session expired before the verification ran")
	case !found || s.Status != events.StatusReady:
		return failJob(ctx, a, jobID, events.CodeSandboxUnreachable, "the session's sandbox is not running")
	}
	o, ok, err := oracleOf(ctx, a, v, s)
	if err != nil || !ok {
		return err
	}

	v, claimed, err := updateVerification(ctx, a, jobID, &v, func(v events.Verification) ([]events.Envelope, error) {
		return v.Start(ids.New(), a.Clock.Now())
	})
	if err != nil || !claimed {
		return err
	}
	if a.Sandboxes == nil {
		return failJob(ctx, a, jobID, events.CodeSandboxUnreachable, "this server has no sandbox runtime configured")
	}
	err = a.Sandboxes.StartVerify(ctx, o.info, o.spec, sandbox.VerifyRequest{
		TestPatch: o.sample.TestPatch, Command: o.env.VerifierCommand, ReportPaths: o.env.ReportPaths,
		Protected: o.env.ProtectedPaths, Timeout: o.timeout,
	}, jobID)
	if err != nil {
		return settleVerification(ctx, a, v, o, sandbox.VerifyResult{}, true, err)
	}
	if v, _, err = updateVerification(ctx, a, jobID, &v, func(v events.Verification) ([]events.Envelope, error) {
		return v.Run(ids.New(), a.Clock.Now())
	}); err != nil {
		// Without its running mark the job cannot complete; the oracle is stopped, and the job
		// left to the sweep of stuck verifications.
		a.Sandboxes.StopVerify(context.WithoutCancel(ctx), o.info, o.spec, jobID)
		return err
	}
	res, done, err := awaitOracle(ctx, a, o)
	return settleVerification(ctx, a, v, o, res, done, err)
}

// awaitVerification is the delivery of a hand-over: if the wait is still its to take (the
// stream stands at the event), it waits for the oracle again.
func awaitVerification(ctx context.Context, a *app.App, e events.Envelope) error {
	jobID := strings.TrimPrefix(e.Stream, events.VerificationStreamPrefix)
	v, ok, err := loadVerification(ctx, a, jobID)
	if err != nil || !ok {
		return err
	}
	s, found, err := loadSession(ctx, a, v.SessionID)
	if err != nil {
		return err
	}
	switch {
	case v.Done() && found && a.Sandboxes != nil:
		// Ended while its oracle ran (cancelled by another instance, which may not reach the
		// oracle): stopping it is this delivery's, and a stop of a stopped run is harmless.
		return a.Sandboxes.StopVerify(ctx, a.SandboxInfo(s.SessionID, s.Sandbox), sandboxSpec(a, s, s.Env), jobID)
	case v.Status != events.JobRunning || v.Version != e.Version:
		return nil // handed over again by another delivery of this event
	case !found:
		return failJob(ctx, a, jobID, events.CodeSandboxUnreachable, "the job's session does not exist")
	}
	o, ok, err := oracleOf(ctx, a, v, s)
	if err != nil || !ok {
		return err
	}
	res, done, err := awaitOracle(ctx, a, o)
	return settleVerification(ctx, a, v, o, res, done, err)
}

// awaitOracle waits for the oracle at most the delivery wait, reading the job's stream every
// watchEvery: a job that ended meanwhile (cancelled from another instance) has its oracle
// stopped, and the wait ends.
func awaitOracle(ctx context.Context, a *app.App, o oracleRun) (sandbox.VerifyResult, bool, error) {
	until := time.Now().Add(a.Config.DeliveryWait)
	for {
		step := min(watchEvery, time.Until(until))
		res, done, err := a.Sandboxes.AwaitVerify(ctx, o.info, o.spec, o.jobID, max(step, 0))
		if done || err != nil || ctx.Err() != nil || time.Until(until) <= 0 {
			return res, done, err
		}
		if v, ok, err := loadVerification(ctx, a, o.jobID); err == nil && ok && v.Done() {
			return sandbox.VerifyResult{}, false, a.Sandboxes.StopVerify(ctx, o.info, o.spec, o.jobID)
		}
	}
}

// settleVerification records what one wait for the oracle found, even when the delivery's
// context ended (a shutdown): the graded result, or an error with its code, after which the
// oracle is stopped; or, while it runs on within its time, the hand-over to the next delivery.
func settleVerification(ctx context.Context, a *app.App, v events.Verification, o oracleRun, res sandbox.VerifyResult, done bool, err error) error {
	rec := context.WithoutCancel(ctx)
	defer func() {
		if done || v.Done() {
			a.Sandboxes.StopVerify(rec, o.info, o.spec, o.jobID)
		}
	}()
	jobID := o.jobID
	if !done && !errors.Is(err, sandbox.ErrNoSuchRun) {
		if v.Done() {
			return nil
		}
		if a.Clock.Now().Sub(v.StartedAt) > o.timeout+verifyGrace {
			a.Sandboxes.StopVerify(rec, o.info, o.spec, o.jobID)
			return failJob(rec, a, jobID, events.CodeVerifierTimeout, fmt.Sprintf("the oracle did not answer within the verifier's timeout of %s", o.timeout+verifyGrace))
		}
		// Still running, or out of reach for a moment: the next delivery waits again, and
		// learns whether the oracle is gone.
		if err != nil {
			a.Logger.WarnContext(ctx, "the oracle did not answer; the next delivery waits again", "job_id", jobID, "error", err.Error())
		}
		_, _, err := updateVerification(rec, a, jobID, &v, func(cur events.Verification) ([]events.Envelope, error) {
			return cur.StillRunning(ids.New(), a.Clock.Now(), v.Version)
		})
		return err
	}
	var rejected *sandbox.Rejection
	switch {
	case err != nil && errors.As(err, &rejected):
		code := events.CodeVerifierRejected
		if rejected.Reason == sandbox.RejectTestPatch {
			code = events.CodeTestPatchFailed
		}
		return failJob(rec, a, jobID, code, rejected.Message)
	case errors.Is(err, sandbox.ErrNoSuchRun):
		return failJob(rec, a, jobID, events.CodeVerifierInterrupted, "the oracle was lost (its runtime restarted while it ran); start a new verification")
	case err != nil:
		// A sandbox that went away with its session is a cancellation, not a failure.
		if s, found, lerr := loadSession(rec, a, v.SessionID); lerr == nil && found && s.Done() {
			return cancelJob(rec, a, jobID, fmt.Sprintf("the session ended (status %s) while the verifier ran", s.Status))
		}
		return failJob(rec, a, jobID, events.CodeSandboxUnreachable, err.Error())
	case res.TimedOut:
		return failJob(rec, a, jobID, events.CodeVerifierTimeout, fmt.Sprintf("the verifier ran past its timeout of %s and was stopped", o.timeout))
	}

	env, sample := o.env, o.sample
	rep, err := grading.Parse(env.ReportFormat, grading.Sources{Stdout: res.Stdout, ReportPaths: env.ReportPaths, Reports: res.Reports})
	var bad *grading.Error
	if errors.As(err, &bad) {
		return failJob(rec, a, jobID, bad.Code, bad.Message+"; "+verifierTail(res))
	}
	if err != nil {
		return failJob(rec, a, jobID, grading.CodeReportMalformed, err.Error())
	}
	result := grading.Grade(rep, grading.Expectation{FailToPass: sample.FailToPass, PassToPass: sample.PassToPass, FailToFail: sample.FailToFail},
		grading.Run{Stdout: res.Stdout, Stderr: res.Stderr, Duration: res.Duration})
	result.IgnoredChanges = res.IgnoredChanges
	stored, err := storeLargeReport(rec, a, verificationResult(result))
	if err != nil {
		return failJob(rec, a, jobID, events.CodeResultNotStored, fmt.Sprintf("the verification ended (success %t, %d of %d tests passed, resolution %s) but %v",
			result.IsSuccess, result.Passed, result.Total, result.Resolution, err))
	}
	_, _, err = updateVerification(rec, a, jobID, &v, func(v events.Verification) ([]events.Envelope, error) {
		return v.Complete(ids.New(), a.Clock.Now(), stored)
	})
	return err
}

// verifierTail says how the verifier ended, for a job whose report could not be read: its exit
// code and the end of what it wrote.
func verifierTail(res sandbox.VerifyResult) string {
	out := strings.TrimSpace(res.Stderr)
	if out == "" {
		out = strings.TrimSpace(res.Stdout)
	}
	if len(out) > 1000 {
		out = "..." + out[len(out)-1000:]
	}
	msg := fmt.Sprintf("the verifier exited with code %d", res.ExitCode)
	if res.Message != "" {
		msg += " (" + res.Message + ")"
	}
	if out != "" {
		msg += "; it wrote: " + out
	}
	return msg
}

// cancelVerifications cancels the unfinished jobs of a session that ended and stops their
// oracles, wherever they run: the runtime finds an oracle by its job's id.
func cancelVerifications(ctx context.Context, a *app.App, sessionID string) error {
	jobs, _, err := projections.List[projections.VerificationDoc](ctx, a.Docs, projections.VerificationCollection,
		projections.Query{Where: []projections.Filter{{Field: "session_id", Value: sessionID}}})
	if err != nil {
		return fmt.Errorf("jobs of session %s: %w", sessionID, err)
	}
	var s *events.Session
	for _, j := range jobs {
		if j.Status == events.JobCompleted || j.Status == events.JobError || j.Status == events.JobCancelled {
			continue
		}
		if err := cancelJob(ctx, a, j.JobID, "the session ended before the verification finished"); err != nil {
			return err
		}
		if j.Status == events.JobPending || a.Sandboxes == nil {
			continue
		}
		if s == nil {
			loaded, _, err := loadSession(ctx, a, sessionID)
			if err != nil {
				return err
			}
			s = &loaded
		}
		if err := a.Sandboxes.StopVerify(ctx, a.SandboxInfo(s.SessionID, s.Sandbox), sandboxSpec(a, *s, s.Env), j.JobID); err != nil {
			return fmt.Errorf("stop the oracle of job %s: %w", j.JobID, err)
		}
	}
	return nil
}

// recoverVerifications runs when the server starts: on the embedded default one process runs
// every job, so a job left starting or running was being run by the process that stopped, and
// nothing will finish it. (On GCP another instance may still be running it.)
func recoverVerifications(ctx context.Context, a *app.App) error {
	if a.Config.Backend != "embedded" {
		return nil
	}
	for _, status := range []string{events.JobStarting, events.JobRunning} {
		jobs, _, err := projections.List[projections.VerificationDoc](ctx, a.Docs, projections.VerificationCollection,
			projections.Query{Where: []projections.Filter{{Field: "status", Value: status}}})
		if err != nil {
			return fmt.Errorf("interrupted verifications: %w", err)
		}
		for _, j := range jobs {
			if err := failJob(ctx, a, j.JobID, events.CodeVerifierInterrupted, "the server stopped while the verifier ran; start a new verification"); err != nil {
				return err
			}
		}
	}
	return nil
}

func loadVerification(ctx context.Context, a *app.App, jobID string) (events.Verification, bool, error) {
	evs, err := a.Events.Load(ctx, events.VerificationStream(jobID), 1)
	if err != nil {
		return events.Verification{}, false, fmt.Errorf("load verification %s: %w", jobID, err)
	}
	return events.FoldVerification(evs)
}

// updateVerification changes a job through the write path, deciding first on known when the
// caller holds the job's state (nil: load it). recorded says whether this call recorded
// anything; an unknown job decides nothing.
func updateVerification(ctx context.Context, a *app.App, jobID string, known *events.Verification, decide func(v events.Verification) ([]events.Envelope, error)) (events.Verification, bool, error) {
	var opts []app.Option
	if known != nil {
		k := *known
		opts = append(opts, app.From(&k))
	}
	v, stored, err := app.Update(ctx, a, events.VerificationStream(jobID), events.VerificationOf, func(v *events.Verification) ([]events.Envelope, error) {
		if v.Version == 0 {
			return nil, nil
		}
		return decide(*v)
	}, opts...)
	if err != nil {
		return *v, len(stored) > 0, fmt.Errorf("record verification %s: %w", jobID, err)
	}
	return *v, len(stored) > 0, nil
}

func failJob(ctx context.Context, a *app.App, jobID, code, message string) error {
	_, _, err := updateVerification(ctx, a, jobID, nil, func(v events.Verification) ([]events.Envelope, error) {
		return v.Fail(ids.New(), a.Clock.Now(), code, message)
	})
	return err
}

func cancelJob(ctx context.Context, a *app.App, jobID, reason string) error {
	_, _, err := updateVerification(ctx, a, jobID, nil, func(v events.Verification) ([]events.Envelope, error) {
		return v.Cancel(ids.New(), a.Clock.Now(), reason)
	})
	return err
}

// verificationResult is what a completed verification records of the grader's result.
func verificationResult(r grading.Result) events.VerificationResult {
	details := func(ds []grading.TestDetail) []events.TestDetail {
		if ds == nil {
			return nil
		}
		out := make([]events.TestDetail, len(ds))
		for i, d := range ds {
			out[i] = events.TestDetail{Name: d.Name, Details: d.Details, Kind: d.Kind, DurationSeconds: d.DurationSeconds, Count: d.Count}
		}
		return out
	}
	return events.VerificationResult{
		Tool: r.Tool, IsSuccess: r.IsSuccess, ExecutionDurationSeconds: r.ExecutionDurationSeconds,
		Total: r.Total, Passed: r.Passed, Failed: r.Failed, Skipped: r.Skipped,
		Passes: details(r.Passes), Failures: details(r.Failures), Skips: details(r.Skips),
		Stdout: r.Stdout, Stderr: r.Stderr, Resolution: string(r.Resolution),
		FailToPassFailed: r.FailToPassFailed, PassToPassFailed: r.PassToPassFailed,
		FailToFailPassed: r.FailToFailPassed, NotFound: r.NotFound,
		UnlistedPassed: r.UnlistedPassed, UnlistedFailed: r.UnlistedFailed, IgnoredChanges: r.IgnoredChanges,
	}
}
