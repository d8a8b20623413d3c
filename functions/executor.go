package functions

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// The executor runs a requested command in its session's sandbox and records the result. It first
// records its claim (exec started) at the interaction's version 1: a duplicate delivery finds the
// claim, or loses the race to append it, and never runs the command twice.
func init() {
	Consumers = append(Consumers, Consumer{
		Name:  "Executor",
		Wants: func(e events.Envelope) bool { return e.Type == events.ExecRequested },
		// Its state is the interaction's own stream (the claim at version 1, then the result): a
		// duplicate delivery finds them, so the runner needs no checkpoint of its own.
		SelfVersioned: true,
		Handle:        execute,
	})
}

// execGrace is how long past the command's own timeout the executor waits for the agent to
// answer before it calls the sandbox unreachable.
const execGrace = 30 * time.Second

func execute(ctx context.Context, a *App, e events.Envelope) error {
	stream := e.Stream
	id := strings.TrimPrefix(stream, "interaction-")
	// One delivery at a time in this process; the mark also tells a claim of this process from
	// one left by an earlier run.
	if _, busy := execsRunning.LoadOrStore(id, true); busy {
		return nil
	}
	defer execsRunning.Delete(id)
	evs, it, ok, err := a.claim(ctx, e)
	if err != nil || !ok {
		return err
	}
	res := runCommand(ctx, a, it)
	done, err := it.Complete(ids.New(), a.Clock.Now(), res)
	if err != nil {
		return err
	}
	// The waiting GET is woken as soon as the result is in the log, with the interaction as it
	// now stands; the projection follows through the bus.
	if done, err = a.Log.Append(context.WithoutCancel(ctx), stream, it.Version, done...); err != nil {
		return err
	}
	completions.notify(it.InteractionID, foldDoc(append(evs, done...)))
	return nil
}

// claim appends the executor's claim on the command of e (its request) and returns the stream's
// events with the claim, and the interaction claimed; false when there is nothing to run. The
// request delivered is usually the whole stream, so it is claimed at its version without reading
// anything on the command's path; a stream that moved on refuses the claim, and is then read in
// full and looked at again.
func (a *App) claim(ctx context.Context, e events.Envelope) ([]events.Envelope, events.Interaction, bool, error) {
	evs := []events.Envelope{e}
	for read := e.Version != 1; ; read = true {
		if read {
			var err error
			if evs, err = a.Events.Load(ctx, e.Stream, 1); err != nil {
				return nil, events.Interaction{}, false, err
			}
		}
		it, ok, err := events.FoldInteraction(evs)
		if err != nil || !ok {
			return nil, it, false, err
		}
		if it.Status == events.InteractionProcessing && a.Config.Backend == "embedded" {
			// Claimed by an earlier run of this server, which stopped before recording the
			// result: the command is lost, say so rather than leave it processing forever.
			return nil, it, false, a.interrupt(ctx, it, lostToRestart)
		}
		claim, err := it.Start(ids.New(), a.Clock.Now())
		if err != nil || len(claim) == 0 {
			return nil, it, false, err
		}
		// The claim goes to the log without waiting for its projection, and without a flush of
		// its own: it protects the command from a second delivery, and a power cut that could
		// lose it stops the sandbox's processes too (the next durable append flushes it).
		stored, err := a.Log.Append(events.WithoutSync(ctx), e.Stream, it.Version, claim...)
		switch {
		case errors.Is(err, events.ErrConcurrency) && !read:
			continue // the stream moved on: read it
		case errors.Is(err, events.ErrConcurrency):
			return nil, it, false, nil // another delivery claimed it
		case err != nil:
			return nil, it, false, err
		}
		if err := it.Apply(stored[0]); err != nil {
			return nil, it, false, err
		}
		return append(evs, stored...), it, true, nil
	}
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

// execsRunning holds the interactions this process is executing.
var execsRunning sync.Map

// Why a claimed command is recorded as lost.
const (
	lostToRestart = "the command was interrupted: the server restarted while it ran"
	lostToSilence = "the command was interrupted: its executor stopped before recording a result, and the command's timeout has long passed"
)

// interrupt records a claimed command as lost: exit code -1000 and why.
func (a *App) interrupt(ctx context.Context, it events.Interaction, why string) error {
	done, err := it.Complete(ids.New(), a.Clock.Now(), events.InteractionResult{
		ExitCode: sandbox.InfraExitCode, Message: why,
	})
	if err != nil || len(done) == 0 {
		return err
	}
	_, err = a.Record(ctx, events.InteractionStream(it.InteractionID), it.Version, done...)
	if errors.Is(err, events.ErrConcurrency) {
		return nil // completed meanwhile
	}
	completions.notify(it.InteractionID, nil)
	return err
}

// runCommand runs the interaction's command in its session's sandbox. Whatever keeps it from
// running is a result too: exit code -1000 and the reason.
func runCommand(ctx context.Context, a *App, it events.Interaction) events.InteractionResult {
	start := time.Now()
	s, ok, err := a.loadSession(ctx, it.SessionID)
	if err == nil && !ok {
		err = errors.New("the session does not exist")
	}
	if err != nil {
		return infraResult(err, time.Since(start))
	}
	if err := s.CanRun(a.Clock.Now()); err != nil {
		return events.InteractionResult{ExitCode: sandbox.InfraExitCode, Message: "the command did not run: " + err.Error() + " (status " + s.Status + ")"}
	}
	c, err := a.sandboxClient(s)
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
