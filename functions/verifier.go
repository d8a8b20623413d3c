package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/grading"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// verifier is the process manager of verification jobs. On a request it claims the job
// (verification started, at the stream's version: a duplicate delivery finds the claim or loses
// the race and never runs the oracle twice), has the runtime run the oracle on the session's
// changes in a fresh sandbox of its own (the session's sandbox is only read), then parses and
// grades the reports and records the result, or an error with a code. When a session ends, its
// unfinished jobs are cancelled and a verifier still running for it is stopped.
type verifier struct {
	// running holds the cancel function of every verifier call under way in this process, by
	// job id, so that the end of a session stops its verifier at once.
	running sync.Map
}

// handle is the verifier's consumer: a request runs the job, a session's end cancels its jobs.
func (vf *verifier) handle(ctx context.Context, a *app.App, e events.Envelope) error {
	if e.Type == events.SessionEnded {
		return vf.cancelVerifications(ctx, a, strings.TrimPrefix(e.Stream, "session-"))
	}
	return vf.runVerification(ctx, a, strings.TrimPrefix(e.Stream, events.VerificationStreamPrefix))
}

// wantsVerifier: the verifier's events.
func wantsVerifier(e events.Envelope) bool {
	return e.Type == events.VerificationRequested || e.Type == events.SessionEnded
}

// errSessionEnded is the cause of a verifier call cancelled because its session ended.
var errSessionEnded = errors.New("the session ended")

// verifyGrace is how long past the verifier's timeout the call waits for the oracle (reading the
// changes, starting the oracle sandbox, the test patch, collecting the reports) before the job
// errors with VERIFIER_TIMEOUT.
const verifyGrace = 2 * time.Minute

func (vf *verifier) runVerification(ctx context.Context, a *app.App, jobID string) error {
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
	sample, err := projections.SampleVersion(ctx, a.Docs, s.Dataset, s.SampleID, s.SampleVersion)
	if errors.Is(err, projections.ErrNotFound) {
		return failJob(ctx, a, jobID, events.CodeSampleNotFound, fmt.Sprintf("sample %s/%s version %d is not in the catalog: %v", s.Dataset, s.SampleID, s.SampleVersion, err))
	}
	if err != nil {
		return err
	}
	// The session's environment is the one its sandbox was built from.
	env := s.Env
	if env.VerifierCommand == "" {
		env = sample.Environment
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

	timeout := time.Duration(v.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = a.Config.VerifyTimeout
	}
	callCtx, cancel := context.WithCancelCause(ctx)
	vf.running.Store(jobID, cancel)
	callCtx, stop := context.WithTimeout(callCtx, timeout+verifyGrace)
	// The running mark is recorded while the sandbox prepares the run, off the critical path; the
	// result is recorded after it, so the stream keeps its order.
	type mark struct {
		v   events.Verification
		err error
	}
	marked := make(chan mark, 1)
	go func(v events.Verification) {
		v, _, err := updateVerification(ctx, a, jobID, &v, func(v events.Verification) ([]events.Envelope, error) {
			return v.Run(ids.New(), a.Clock.Now())
		})
		marked <- mark{v, err}
	}(v)
	res, err := a.Sandboxes.Verify(callCtx, a.SandboxInfo(s.SessionID, s.Sandbox), sandboxSpec(a, s, env), sandbox.VerifyRequest{
		TestPatch: sample.TestPatch, Command: env.VerifierCommand, ReportPaths: env.ReportPaths,
		Protected: env.ProtectedPaths, Timeout: timeout,
	})
	cause := context.Cause(callCtx)
	stop()
	vf.running.Delete(jobID)
	cancel(nil)
	m := <-marked
	if m.err != nil && ctx.Err() == nil {
		// Without its running mark the job cannot complete; try once more, then let the
		// delivery fail (the job is then left to the restart recovery).
		if m.v, _, m.err = updateVerification(ctx, a, jobID, nil, func(v events.Verification) ([]events.Envelope, error) {
			return v.Run(ids.New(), a.Clock.Now())
		}); m.err != nil {
			return m.err
		}
	}

	// The outcome is recorded even when the delivery's context ended (a shutdown).
	rec := context.WithoutCancel(ctx)
	var rejected *sandbox.Rejection
	switch {
	case errors.Is(cause, errSessionEnded):
		return cancelJob(rec, a, jobID, "the session ended while the verifier ran")
	case ctx.Err() != nil:
		return failJob(rec, a, jobID, events.CodeVerifierInterrupted, "the server stopped while the verifier ran; start a new verification")
	case err != nil && errors.As(err, &rejected):
		code := events.CodeVerifierRejected
		if rejected.Reason == sandbox.RejectTestPatch {
			code = events.CodeTestPatchFailed
		}
		return failJob(rec, a, jobID, code, rejected.Message)
	case err != nil && errors.Is(cause, context.DeadlineExceeded):
		return failJob(rec, a, jobID, events.CodeVerifierTimeout, fmt.Sprintf("the sandbox did not answer within the verifier's timeout of %s", timeout+verifyGrace))
	case err != nil:
		// A sandbox that went away with its session is a cancellation, not a failure.
		if s, found, lerr := loadSession(rec, a, v.SessionID); lerr == nil && found && s.Done() {
			return cancelJob(rec, a, jobID, fmt.Sprintf("the session ended (status %s) while the verifier ran", s.Status))
		}
		return failJob(rec, a, jobID, events.CodeSandboxUnreachable, err.Error())
	case res.TimedOut:
		return failJob(rec, a, jobID, events.CodeVerifierTimeout, fmt.Sprintf("the verifier ran past its timeout of %s and was stopped", timeout))
	}

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
	var known *events.Verification
	if m.err == nil {
		known = &m.v // the state after the running mark: no need to read the stream again
	}
	stored, err := storeLargeReport(rec, a, verificationResult(result))
	if err != nil {
		return failJob(rec, a, jobID, events.CodeResultNotStored, fmt.Sprintf("the verification ended (success %t, %d of %d tests passed, resolution %s) but %v",
			result.IsSuccess, result.Passed, result.Total, result.Resolution, err))
	}
	_, _, err = updateVerification(rec, a, jobID, known, func(v events.Verification) ([]events.Envelope, error) {
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

// cancelVerifications cancels the unfinished jobs of a session that ended, and stops the
// verifier of any of them running in this process.
func (vf *verifier) cancelVerifications(ctx context.Context, a *app.App, sessionID string) error {
	jobs, _, err := projections.List[projections.VerificationDoc](ctx, a.Docs, projections.VerificationCollection,
		projections.Query{Where: []projections.Filter{{Field: "session_id", Value: sessionID}}})
	if err != nil {
		return fmt.Errorf("jobs of session %s: %w", sessionID, err)
	}
	for _, j := range jobs {
		if j.Status == events.JobCompleted || j.Status == events.JobError || j.Status == events.JobCancelled {
			continue
		}
		if c, ok := vf.running.Load(j.JobID); ok {
			c.(context.CancelCauseFunc)(errSessionEnded)
		}
		if err := cancelJob(ctx, a, j.JobID, "the session ended before the verification finished"); err != nil {
			return err
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
