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
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// executor runs a requested command in its session's sandbox and records the result. It first
// records its claim (exec started) at the interaction's version 1: a duplicate delivery finds the
// claim, or loses the race to append it, and never runs the command twice. The sandbox's agent
// runs the command on its own, under the interaction's id (sandbox.Client.Run); a delivery waits
// for it at most the configured delivery wait, and if the command runs on, records that it does
// (exec running) and hands the wait to the delivery of that event, which may be on another
// instance: no request lasts as long as a command of an hour. Its state is the interaction's own
// stream: the runner needs no checkpoint of its own.
type executor struct {
	// running marks the events this process is handling: a duplicate delivery of one is dropped.
	running sync.Map
	// claimed holds the interactions this process claimed and has not recorded yet: on the
	// embedded default a claim not among them was left by an earlier run of the server.
	claimed sync.Map
}

// execGrace is how long past the command's own timeout the executor waits for the agent to
// answer before it calls the sandbox unreachable.
const execGrace = 30 * time.Second

func (x *executor) execute(ctx context.Context, a *app.App, e events.Envelope) error {
	mark := fmt.Sprintf("%s@%d", e.Stream, e.Version)
	if _, busy := x.running.LoadOrStore(mark, true); busy {
		return nil
	}
	defer x.running.Delete(mark)
	if e.Type == events.ExecRunning {
		return x.awaitCommand(ctx, a, e)
	}
	_, ours := x.claimed.Load(e.Stream)
	seen, it, ok, err := claim(ctx, a, e, ours)
	if err != nil || !ok {
		return err
	}
	x.claimed.Store(e.Stream, true)
	start := time.Now()
	c, failed := commandClient(ctx, a, *it, false)
	if failed != nil && ctx.Err() != nil {
		return handOver(ctx, a, *it) // cut short (a shutdown): not the command's failure
	}
	if failed != nil {
		return x.record(ctx, a, seen, *it, *failed)
	}
	timeout := time.Duration(it.Exec.CommandTimeout) * time.Second
	st, err := c.Run(ctx, sandbox.RunRequest{ID: it.InteractionID, Command: it.Exec.Command, Timeout: timeout, Wait: a.Config.DeliveryWait})
	return x.settleCommand(ctx, a, seen, *it, st, err, start)
}

// awaitCommand is the delivery of an exec-running event: if the wait is still its to take (the
// stream stands at the event), it waits again for the command in the sandbox.
func (x *executor) awaitCommand(ctx context.Context, a *app.App, e events.Envelope) error {
	seen, err := a.Events.Load(ctx, e.Stream, 1)
	if err != nil {
		return err
	}
	it, ok, err := events.FoldInteraction(seen)
	if err != nil || !ok || it.Status != events.InteractionProcessing || it.Version != e.Version {
		return err // done, or handed over again by another delivery of this event
	}
	start := time.Now()
	c, failed := commandClient(ctx, a, it, true)
	if failed != nil && ctx.Err() != nil {
		return handOver(ctx, a, it)
	}
	if failed != nil {
		return x.record(ctx, a, seen, it, *failed)
	}
	st, err := c.Await(ctx, it.InteractionID, a.Config.DeliveryWait)
	return x.settleCommand(ctx, a, seen, it, st, err, start)
}

// settleCommand records what one wait for a command found: its result, or that it runs on (the
// wait ended, or this delivery was cut short while the command goes on in the sandbox), or why
// it cannot be waited for.
func (x *executor) settleCommand(ctx context.Context, a *app.App, seen []events.Envelope, it events.Interaction, st sandbox.RunState, err error, start time.Time) error {
	timeout := time.Duration(it.Exec.CommandTimeout) * time.Second
	switch {
	case err == nil && st.Done && st.Result != nil:
		return x.record(ctx, a, seen, it, commandResult(*st.Result, timeout))
	case err == nil || ctx.Err() != nil:
		return handOver(ctx, a, it)
	case errors.Is(err, sandbox.ErrNoSuchRun):
		return x.record(ctx, a, seen, it, events.InteractionResult{ExitCode: sandbox.InfraExitCode, ExecutionTimeSeconds: time.Since(start).Seconds(),
			Message: lostToSandbox})
	}
	// A sandbox that went away with its session: the command ended with it.
	if s, found, lerr := loadSession(ctx, a, it.SessionID); lerr == nil && found && s.Done() {
		return x.record(ctx, a, seen, it, events.InteractionResult{ExitCode: sandbox.InfraExitCode, ExecutionTimeSeconds: time.Since(start).Seconds(),
			Message: "the command was interrupted: its session ended (status " + s.Status + ") while it ran"})
	}
	return x.record(ctx, a, seen, it, infraResult(err, time.Since(start)))
}

// handOver records that the claimed command it runs on (or may: a delivery cut short does not
// know whether the agent got it), so that the next delivery waits for it; even when ctx ended.
func handOver(ctx context.Context, a *app.App, it events.Interaction) error {
	_, _, err := app.Update(context.WithoutCancel(ctx), a, events.InteractionStream(it.InteractionID), events.InteractionOf, func(cur *events.Interaction) ([]events.Envelope, error) {
		return cur.StillRunning(ids.New(), a.Clock.Now(), it.Version)
	}, app.From(&it), app.NoInline())
	return err
}

// record is recordResult by the executor, which forgets its claim once the result is in.
func (x *executor) record(ctx context.Context, a *app.App, seen []events.Envelope, it events.Interaction, res events.InteractionResult) error {
	err := recordResult(ctx, a, seen, it, res)
	if err == nil {
		x.claimed.Delete(events.InteractionStream(it.InteractionID))
	}
	return err
}

// recordResult records the result of the claimed command it (whose stream's events are seen) and
// wakes the requests waiting on it with the interaction as it now stands; the projection follows
// through the bus. A stream that completed meanwhile (the reaper called it lost) records nothing.
func recordResult(ctx context.Context, a *app.App, seen []events.Envelope, it events.Interaction, res events.InteractionResult) error {
	res = storeLargeOutput(context.WithoutCancel(ctx), a, res) // output past 64 KiB goes to the blob store
	_, done, err := app.Update(context.WithoutCancel(ctx), a, events.InteractionStream(it.InteractionID), events.InteractionOf, func(it *events.Interaction) ([]events.Envelope, error) {
		return it.Complete(ids.New(), a.Clock.Now(), res)
	}, app.From(&it), app.NoInline())
	if err != nil || len(done) == 0 {
		return err
	}
	a.Completions.Notify(it.InteractionID, foldDoc(append(seen, done...)))
	return nil
}

// claim appends the executor's claim on the command of e (its request) and returns the stream's
// events with the claim, and the interaction claimed; false when there is nothing to run. The
// request delivered is usually the whole stream, so it is claimed at its version without reading
// anything on the command's path; a stream that moved on refuses the claim, and is then read.
// The claim goes to the log without waiting for its projection, and without a flush of its own:
// it protects the command from a second delivery, and a power cut that could lose it stops the
// sandbox's processes too (the next durable append flushes it). ours says this process claimed
// the command itself (on the embedded default any other claim was left by an earlier run).
func claim(ctx context.Context, a *app.App, e events.Envelope, ours bool) ([]events.Envelope, *events.Interaction, bool, error) {
	seen := []events.Envelope{e}
	fold := func(evs []events.Envelope) (*events.Interaction, error) {
		seen = evs
		return events.InteractionOf(evs)
	}
	opts := []app.Option{app.WithoutSync(), app.NoInline()}
	if e.Version == 1 {
		known, err := events.InteractionOf(seen)
		if err != nil {
			return nil, known, false, err
		}
		opts = append(opts, app.From(known))
	}
	handover := false
	it, stored, err := app.Update(ctx, a, e.Stream, fold, func(it *events.Interaction) ([]events.Envelope, error) {
		handover = it.Status == events.InteractionProcessing && a.Config.Backend == "embedded" && !ours
		if handover {
			// Claimed by an earlier run of this server, which stopped before the result: the
			// agent ran the command on its own, so the wait is handed over, not the command.
			return it.StillRunning(ids.New(), a.Clock.Now(), it.Version)
		}
		return it.Start(ids.New(), a.Clock.Now())
	}, opts...)
	if err != nil || len(stored) == 0 || handover {
		return nil, it, false, err // nothing to run: unknown, claimed by another delivery, or handed over
	}
	return append(seen, stored...), it, true, nil
}

// foldDoc is the read-model document of an interaction's events, or nil if they do not fold.
func foldDoc(evs []events.Envelope) *projections.InteractionDoc {
	var d projections.InteractionDoc
	for _, e := range evs {
		if err := projections.ApplyInteraction(&d, e); err != nil {
			return nil
		}
	}
	return &d
}

// Why a claimed command is recorded as lost.
const (
	lostToSilence = "the command was interrupted: its executor stopped before recording a result, and the command's timeout has long passed"
	lostToSandbox = "the command was interrupted: its sandbox does not know it (the sandbox, or the server before it sent the command, restarted)"
)

// interrupt records the claimed command it as lost: exit code -1000 and why. A stream that moved
// on since it was read (completed, or claimed again) is left as it is.
func interrupt(ctx context.Context, a *app.App, it events.Interaction, why string) error {
	read := it.Version
	_, done, err := app.Update(ctx, a, events.InteractionStream(it.InteractionID), events.InteractionOf, func(it *events.Interaction) ([]events.Envelope, error) {
		if it.Version != read {
			return nil, nil
		}
		return it.Complete(ids.New(), a.Clock.Now(), events.InteractionResult{ExitCode: sandbox.InfraExitCode, Message: why})
	}, app.From(&it))
	if err == nil && len(done) > 0 {
		a.Completions.Notify(it.InteractionID, nil)
	}
	return err
}

// commandClient is the client of the sandbox of the interaction's session, or, when the command
// cannot run there (or, once started, can no longer be waited for), the result that says why.
func commandClient(ctx context.Context, a *app.App, it events.Interaction, started bool) (sandbox.Client, *events.InteractionResult) {
	s, ok, err := loadSession(ctx, a, it.SessionID)
	if err == nil && !ok {
		err = errors.New("the session does not exist")
	}
	if err != nil {
		r := infraResult(err, 0)
		return nil, &r
	}
	if err := s.CanRun(a.Clock.Now()); err != nil {
		msg := "the command did not run: " + err.Error() + " (status " + s.Status + ")"
		if started {
			msg = "the command was interrupted: " + err.Error() + " (status " + s.Status + ")"
		}
		return nil, &events.InteractionResult{ExitCode: sandbox.InfraExitCode, Message: msg}
	}
	c, err := a.SandboxClient(s)
	if err != nil {
		r := infraResult(err, 0)
		return nil, &r
	}
	return c, nil
}

// commandResult is what the interaction records of the agent's result.
func commandResult(r sandbox.ExecResult, timeout time.Duration) events.InteractionResult {
	msg := r.Message
	if r.TimedOut && !strings.Contains(strings.ToLower(msg), "timed out") {
		msg = strings.TrimSpace("command timed out after " + timeout.String() + "; its processes were killed. " + msg)
	}
	res := events.InteractionResult{
		ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr, ExecutionTimeSeconds: r.Duration.Seconds(),
		Success: r.ExitCode == 0 && !r.TimedOut, Message: msg, TimedOut: r.TimedOut,
	}
	if r.PeakMemoryBytes > 0 || r.CPUTime > 0 {
		res.Usage = &events.Usage{PeakMemoryBytes: r.PeakMemoryBytes, CPUSeconds: r.CPUTime.Seconds()}
	}
	return res
}

// wantsExec: the executor's events.
func wantsExec(e events.Envelope) bool {
	return e.Type == events.ExecRequested || e.Type == events.ExecRunning
}
