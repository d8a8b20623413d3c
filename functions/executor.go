package functions

import (
	"context"
	"errors"
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
// claim, or loses the race to append it, and never runs the command twice. Its state is the
// interaction's own stream (the claim, then the result): a duplicate delivery finds them, so the
// runner needs no checkpoint of its own.
type executor struct {
	// running holds the interactions this process is executing: one delivery at a time, and the
	// mark tells a claim of this process from one left by an earlier run.
	running sync.Map
}

// execGrace is how long past the command's own timeout the executor waits for the agent to
// answer before it calls the sandbox unreachable.
const execGrace = 30 * time.Second

func (x *executor) execute(ctx context.Context, a *app.App, e events.Envelope) error {
	id := strings.TrimPrefix(e.Stream, "interaction-")
	if _, busy := x.running.LoadOrStore(id, true); busy {
		return nil
	}
	defer x.running.Delete(id)
	seen, it, ok, err := claim(ctx, a, e)
	if err != nil || !ok {
		return err
	}
	res := runCommand(ctx, a, *it)
	res = storeLargeOutput(context.WithoutCancel(ctx), a, res) // recorded even when ctx ends, as below
	// The waiting GET is woken as soon as the result is in the log, with the interaction as it
	// now stands; the projection follows through the bus.
	_, done, err := app.Update(context.WithoutCancel(ctx), a, e.Stream, events.InteractionOf, func(it *events.Interaction) ([]events.Envelope, error) {
		return it.Complete(ids.New(), a.Clock.Now(), res)
	}, app.From(it), app.NoInline())
	if err != nil || len(done) == 0 {
		return err // nothing recorded: completed meanwhile (the reaper called it lost)
	}
	a.Completions.Notify(it.InteractionID, foldDoc(append(seen, done...)))
	return nil
}

// errRestarted: the command was claimed by an earlier run of this server.
var errRestarted = errors.New("claimed by an earlier run")

// claim appends the executor's claim on the command of e (its request) and returns the stream's
// events with the claim, and the interaction claimed; false when there is nothing to run. The
// request delivered is usually the whole stream, so it is claimed at its version without reading
// anything on the command's path; a stream that moved on refuses the claim, and is then read.
// The claim goes to the log without waiting for its projection, and without a flush of its own:
// it protects the command from a second delivery, and a power cut that could lose it stops the
// sandbox's processes too (the next durable append flushes it).
func claim(ctx context.Context, a *app.App, e events.Envelope) ([]events.Envelope, *events.Interaction, bool, error) {
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
	it, stored, err := app.Update(ctx, a, e.Stream, fold, func(it *events.Interaction) ([]events.Envelope, error) {
		if it.Status == events.InteractionProcessing && a.Config.Backend == "embedded" {
			return nil, errRestarted
		}
		return it.Start(ids.New(), a.Clock.Now())
	}, opts...)
	switch {
	case errors.Is(err, errRestarted):
		// The earlier run stopped before recording the result: the command is lost, say so
		// rather than leave it processing forever.
		return nil, it, false, interrupt(ctx, a, *it, lostToRestart)
	case err != nil || len(stored) == 0:
		return nil, it, false, err // nothing to run: unknown, or claimed by another delivery
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
	lostToRestart = "the command was interrupted: the server restarted while it ran"
	lostToSilence = "the command was interrupted: its executor stopped before recording a result, and the command's timeout has long passed"
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

// runCommand runs the interaction's command in its session's sandbox. Whatever keeps it from
// running is a result too: exit code -1000 and the reason.
func runCommand(ctx context.Context, a *app.App, it events.Interaction) events.InteractionResult {
	start := time.Now()
	s, ok, err := loadSession(ctx, a, it.SessionID)
	if err == nil && !ok {
		err = errors.New("the session does not exist")
	}
	if err != nil {
		return infraResult(err, time.Since(start))
	}
	if err := s.CanRun(a.Clock.Now()); err != nil {
		return events.InteractionResult{ExitCode: sandbox.InfraExitCode, Message: "the command did not run: " + err.Error() + " (status " + s.Status + ")"}
	}
	c, err := a.SandboxClient(s)
	if err != nil {
		return infraResult(err, time.Since(start))
	}
	timeout := time.Duration(it.Exec.CommandTimeout) * time.Second
	callCtx, cancel := context.WithTimeout(ctx, timeout+execGrace)
	defer cancel()
	r, err := c.Exec(callCtx, it.Exec.Command, timeout)
	if err != nil && ctx.Err() != nil {
		return events.InteractionResult{ExitCode: sandbox.InfraExitCode, ExecutionTimeSeconds: time.Since(start).Seconds(),
			Message: "the command was interrupted: the server shut down while it ran"}
	}
	if err != nil {
		return infraResult(err, time.Since(start))
	}
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
func wantsExec(e events.Envelope) bool { return e.Type == events.ExecRequested }
