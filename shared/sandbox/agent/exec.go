package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox"
)

// TimeoutExitCode is the exit code of a command killed at its timeout, as timeout(1) reports it.
const TimeoutExitCode = 124

// pipeDrain is how long a finished command's output may take to reach its end: past it, a
// background process (`server &`) that inherited the pipes is taken to hold them, and the
// command is done with what it wrote so far.
const pipeDrain = 500 * time.Millisecond

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
	stdout, stderr := &output{c: capped{limit: limit}}, &output{c: capped{limit: limit}}
	for _, o := range []*output{stdout, stderr} {
		if err := o.open(); err != nil {
			stdout.close()
			return sandbox.ExecResult{ExitCode: sandbox.InfraExitCode, Duration: time.Since(start),
				Message: fmt.Sprintf("could not start the command: %v", err)}
		}
	}
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	// With a process limit the command runs in its group's group of commands (Watch.start).
	before := s.limits.counters()
	err := s.limits.start(cmd, s.shell)
	// The command has its own copies now; ours must go, or the pipes never reach their end.
	stdout.w.Close()
	stderr.w.Close()
	if err != nil {
		stdout.r.Close()
		stderr.r.Close()
		notes := append(s.limits.notes(before, s.limits.counters()), fmt.Sprintf("could not start the command: %v", err))
		return sandbox.ExecResult{ExitCode: 127, Stderr: err.Error(), Duration: time.Since(start),
			Message: strings.Join(notes, "; ")}
	}
	stdout.start()
	stderr.start()
	pid := cmd.Process.Pid
	stopDisk := s.limits.watchDisk(pid)

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
	diskNote := stopDisk()
	cmd.Wait()
	// Everything bash and its group wrote is in the pipes; wait for their end, unless a
	// background process holds them.
	until := time.Now().Add(pipeDrain)
	outEnded := stdout.finish(until)
	errEnded := stderr.finish(until)
	held := !outEnded || !errEnded
	res := sandbox.ExecResult{Duration: time.Since(start), TimedOut: timedOut}
	res.PeakMemoryBytes, res.CPUTime = usage(cmd.ProcessState)
	// A limit the command hit comes first: it is why the command failed.
	notes := s.limits.notes(before, s.limits.counters())
	if diskNote != "" {
		notes = append(notes, diskNote)
	}
	switch {
	case timedOut:
		res.ExitCode = TimeoutExitCode
		notes = append(notes, fmt.Sprintf("command timed out after %s; its processes were killed", timeout))
	case cancelled:
		res.ExitCode = sandbox.InfraExitCode
		notes = append(notes, "command cancelled: the caller went away; its processes were killed")
	default:
		res.ExitCode = exitCode(cmd)
		if held {
			notes = append(notes, "a background process kept the output open; output written after the command exited is not shown")
		}
	}
	out, errs := stdout.result(), stderr.result()
	res.Stdout, res.Stderr = out.String(), errs.String()
	if out.dropped > 0 {
		notes = append(notes, fmt.Sprintf("stdout truncated to %d bytes (%d bytes dropped)", limit, out.dropped))
	}
	if errs.dropped > 0 {
		notes = append(notes, fmt.Sprintf("stderr truncated to %d bytes (%d bytes dropped)", limit, errs.dropped))
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

// output is one of a command's output pipes and what was read from it.
type output struct {
	r, w *os.File
	c    capped
	done chan struct{}
	mu   sync.Mutex // c, between the reader and a final drain
}

func (o *output) open() (err error) {
	o.r, o.w, err = os.Pipe()
	return err
}

func (o *output) close() {
	for _, f := range []*os.File{o.r, o.w} {
		if f != nil {
			f.Close()
		}
	}
}

// result is what was read, as finish left it.
func (o *output) result() capped {
	o.mu.Lock()
	defer o.mu.Unlock()
	return capped{buf: o.c.buf, limit: o.c.limit, dropped: o.c.dropped}
}

// start reads the pipe until its end, or until finish cuts it short.
func (o *output) start() {
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := o.r.Read(buf)
			if n > 0 {
				o.mu.Lock()
				o.c.Write(buf[:n])
				o.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
}

// finish waits for the pipe's end until the time given. Past it, whatever is already in the pipe
// is still read, in full, and from then on the pipe is drained and discarded in the background
// as long as the process holding it lives: a background server writing its log must not die of
// SIGPIPE. It reports whether the pipe ended in time.
func (o *output) finish(until time.Time) bool {
	timeout := time.NewTimer(time.Until(until))
	defer timeout.Stop()
	select {
	case <-o.done:
		o.r.Close()
		return true
	case <-timeout.C:
	}
	// Stop the reader, then read what is buffered, without blocking, on this goroutine.
	o.r.SetReadDeadline(time.Now())
	<-o.done
	o.r.SetReadDeadline(time.Time{})
	if rc, err := o.r.SyscallConn(); err == nil {
		buf := make([]byte, 64<<10)
		rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.Read(int(fd), buf)
				if n > 0 {
					o.mu.Lock()
					o.c.Write(buf[:n])
					o.mu.Unlock()
				}
				if n <= 0 || err != nil {
					return true
				}
			}
		})
	}
	go func() {
		io.Copy(io.Discard, o.r)
		o.r.Close()
	}()
	return false
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
