package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox"
)

// TimeoutExitCode is the exit code of a command killed at its timeout, as timeout(1) reports it.
const TimeoutExitCode = 124

// pipeDrain is how long a finished command's output pipes may stay open: a background process
// (`server &`) inherits them, and without a bound the command would never finish.
const pipeDrain = 200 * time.Millisecond

// run executes `bash -c command` in dir, in a process group of its own, and kills the whole group
// at the timeout: SIGTERM, then SIGKILL after grace for whatever ignored it (a grandchild that
// traps TERM). The group is killed while bash is still unreaped, so its id cannot have been
// reused by then. Cancelling ctx (the caller went away) kills the group the same way.
func (s *Server) run(ctx context.Context, dir, command string, timeout time.Duration, limit int) sandbox.ExecResult {
	start := time.Now()
	cmd := s.command(context.Background(), s.shell, "-c", command) // killed by group below, not by a context
	cmd.Dir = dir
	cmd.Env = s.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr := &capped{limit: limit}, &capped{limit: limit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = pipeDrain
	if err := cmd.Start(); err != nil {
		return sandbox.ExecResult{ExitCode: 127, Stderr: err.Error(), Duration: time.Since(start),
			Message: fmt.Sprintf("could not start the command: %v", err)}
	}
	pid := cmd.Process.Pid

	exited := make(chan struct{})
	go func() {
		// WNOWAIT leaves bash a zombie: its pid, and so the group id, stay ours until cmd.Wait.
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		close(exited)
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var timedOut, cancelled bool
	select {
	case <-exited:
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
		cancelled = true
	}
	if timedOut || cancelled {
		unix.Kill(-pid, unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(s.grace):
		}
		// Whatever survived TERM (or outlived bash in its group) goes now.
		unix.Kill(-pid, unix.SIGKILL)
		<-exited
	}
	err := cmd.Wait()
	res := sandbox.ExecResult{Duration: time.Since(start), TimedOut: timedOut}
	var notes []string
	switch {
	case timedOut:
		res.ExitCode = TimeoutExitCode
		notes = append(notes, fmt.Sprintf("command timed out after %s; its processes were killed", timeout))
	case cancelled:
		res.ExitCode = sandbox.InfraExitCode
		notes = append(notes, "command cancelled: the caller went away; its processes were killed")
	default:
		res.ExitCode = exitCode(cmd)
		if errors.Is(err, exec.ErrWaitDelay) {
			notes = append(notes, "a background process kept the output open; output written after the command exited is not shown")
		}
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if stdout.dropped > 0 {
		notes = append(notes, fmt.Sprintf("stdout truncated to %d bytes (%d bytes dropped)", limit, stdout.dropped))
	}
	if stderr.dropped > 0 {
		notes = append(notes, fmt.Sprintf("stderr truncated to %d bytes (%d bytes dropped)", limit, stderr.dropped))
	}
	res.Message = strings.Join(notes, "; ")
	return res
}

// command builds a command of the sandbox, through the confinement's prefix if it has one.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if len(commandPrefix) > 0 {
		full := append(append(append([]string{}, commandPrefix[1:]...), name), args...)
		return exec.CommandContext(ctx, commandPrefix[0], full...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// exitCode is the command's exit status, or 128+signal when a signal ended it (the shell's rule).
func exitCode(cmd *exec.Cmd) int {
	if cmd.ProcessState == nil {
		return sandbox.InfraExitCode
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// capped keeps the first limit bytes written and counts the rest. It never fails a write, so a
// chatty command is not killed by EPIPE once the cap is reached.
type capped struct {
	buf     []byte
	limit   int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.limit - len(c.buf)
	if room >= len(p) {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (c *capped) String() string { return string(c.buf) }
