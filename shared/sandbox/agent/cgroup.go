package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/config"
)

// Limits are the sandbox's limits as its runtime set them; a zero field is none. The runtime
// starts the sandbox in its control group (memory, CPU, processes); the agent applies the others
// itself, and names in a command's result the limit the command hit.
type Limits struct {
	// Cgroup is the name (last path element) of the control group the runtime started the
	// sandbox in: the agent checks that it is in it, and watches its counters.
	Cgroup string
	Memory int64 // bytes: the group's memory limit
	Pids   int64 // the limit on the processes and threads of its group's group of commands
	// OpenFiles is RLIMIT_NOFILE, soft and hard, of the agent and so of every command.
	OpenFiles uint64
	// Disk is how much the work tree's changes may take on disk, in bytes, in DiskDir (the
	// work tree's overlay's upper layer, a host directory).
	Disk    int64
	DiskDir string
}

// Watch is the agent's hold on the sandbox's limits: its control group's counters, the group its
// commands are moved to, and the directory of the work tree's changes, all opened before the
// sandbox's root file system hides them. Its methods do nothing on a nil Watch.
type Watch struct {
	limits    Limits
	memEvents *os.File // memory.oom_control (cgroup v1) or memory.events (v2): oom_kill
	pidEvents *os.File // the commands' pids.events: max
	commands  *os.File // the commands' group's cgroup.procs (written)
	tasks     *os.File // cgroup v1: the commands' group's tasks (written): see spawnIn
	disk      *os.Root // DiskDir

	spawnOnce sync.Once
	spawnCh   chan spawnRequest // nil: commands start held instead

	mu       sync.Mutex
	diskUsed int64 // the work tree's changes after the last command

	holdOnce  sync.Once
	holdShell string // the shell that holds a command until it is moved
}

// OpenLimits applies the open-files limit to this process (commands inherit it, and without
// CAP_SYS_RESOURCE cannot raise it) and opens what the other limits need. It runs before Setup.
func OpenLimits(l Limits) (*Watch, error) {
	if l == (Limits{}) {
		return nil, nil
	}
	w := &Watch{limits: l}
	if l.OpenFiles > 0 {
		// syscall's Setrlimit, not unix's: it also stops the Go runtime from giving children
		// back the soft limit it found at start.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: l.OpenFiles, Max: l.OpenFiles}); err != nil {
			return nil, fmt.Errorf("limit open files to %d: %w", l.OpenFiles, err)
		}
	}
	if l.Cgroup != "" {
		var err error
		if w.memEvents, w.pidEvents, w.commands, err = sandboxGroup(l.Cgroup, l.Pids > 0); err != nil {
			return nil, err
		}
		if w.commands != nil && cgroups.Mode() != cgroups.Unified {
			// cgroup v1 groups hold threads: see spawnIn.
			tasks := filepath.Join(filepath.Dir(w.commands.Name()), "tasks")
			if w.tasks, err = os.OpenFile(tasks, os.O_WRONLY, 0); err != nil {
				return nil, fmt.Errorf("control group: %w", err)
			}
		}
	}
	if l.Disk > 0 {
		var err error
		if w.disk, err = os.OpenRoot(l.DiskDir); err != nil {
			return nil, fmt.Errorf("the work tree's changes: %w", err)
		}
		w.diskUsed = w.diskUsage()
	}
	return w, nil
}

// The sandbox's control group, as its runtime makes it (shared/sandbox/local): the sandbox's
// commands in a group of their own below it, which has the process limit, so that the init and
// the agent keep the room they need while a fork bomb fills it; on cgroup v2 the init and agent in
// one too (a group with groups below it holds no process there).
const (
	commandsGroup = "commands"
	agentGroup    = "agent"
)

// sandboxGroup opens the files of the sandbox's control group the agent uses, after checking
// that this process is in the group named: the memory and pids event counters, and, when the
// group has a process limit, where a command is moved to its commands' group.
func sandboxGroup(name string, pidsLimit bool) (mem, pids, commands *os.File, err error) {
	var memFile, pidsDir string
	if cgroups.Mode() == cgroups.Unified {
		own, err := cgroup2.PidGroupPath(os.Getpid())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("control group: %w", err)
		}
		g := path.Dir(own)
		if path.Base(own) != agentGroup || path.Base(g) != name {
			return nil, nil, nil, fmt.Errorf("the sandbox runs in control group %s, not in %s/%s", own, name, agentGroup)
		}
		memFile, pidsDir = filepath.Join("/sys/fs/cgroup", g, "memory.events"), filepath.Join("/sys/fs/cgroup", g)
	} else {
		subs, err := cgroup1.Default()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("control groups: %w", err)
		}
		own := cgroup1.PidPath(os.Getpid())
		for _, s := range subs {
			dir, ok := s.(interface{ Path(string) string })
			if !ok || (s.Name() != cgroup1.Memory && s.Name() != cgroup1.Pids) {
				continue
			}
			p, err := own(s.Name())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("control group (%s): %w", s.Name(), err)
			}
			if path.Base(p) != name {
				return nil, nil, nil, fmt.Errorf("the sandbox runs in %s control group %s, not in %s", s.Name(), p, name)
			}
			if s.Name() == cgroup1.Memory {
				memFile = filepath.Join(dir.Path(p), "memory.oom_control")
			} else {
				pidsDir = dir.Path(p)
			}
		}
	}
	// Forks fail in the commands' group, whose counter says so on either version.
	pidsFile := filepath.Join(pidsDir, "pids.events")
	if pidsLimit {
		pidsFile = filepath.Join(pidsDir, commandsGroup, "pids.events")
	}
	files := []*os.File{nil, nil, nil}
	for i, f := range []struct {
		path string
		flag int
	}{{memFile, os.O_RDONLY}, {pidsFile, os.O_RDONLY}, {filepath.Join(pidsDir, commandsGroup, "cgroup.procs"), os.O_WRONLY}} {
		if i == 2 && !pidsLimit {
			break
		}
		if files[i], err = os.OpenFile(f.path, f.flag, 0); err != nil {
			for _, o := range files[:i] {
				o.Close()
			}
			return nil, nil, nil, fmt.Errorf("control group: %w", err)
		}
	}
	return files[0], files[1], files[2], nil
}

// counters are the control group's event counts: what a command's before and after tell apart.
type counters struct {
	oomKills, forkFails int64
}

func (w *Watch) counters() counters {
	if w == nil || w.memEvents == nil {
		return counters{}
	}
	return counters{oomKills: readKey(w.memEvents, "oom_kill"), forkFails: readKey(w.pidEvents, "max")}
}

// readKey reads the "key value" line named key of a control group's flat-keyed file, read
// afresh from its start.
func readKey(f *os.File, key string) int64 {
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(buf[:n]))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == key {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// notes say which of the control group's limits were hit between before and after.
func (w *Watch) notes(before, after counters) []string {
	if w == nil {
		return nil
	}
	var out []string
	if k := after.oomKills - before.oomKills; k > 0 && w.limits.Memory > 0 {
		what := "a process"
		if k > 1 {
			what = strconv.FormatInt(k, 10) + " processes"
		}
		out = append(out, fmt.Sprintf("the sandbox's memory limit (%s) was reached: the kernel killed %s (out of memory)", config.FormatBytes(w.limits.Memory), what))
	}
	if after.forkFails > before.forkFails && w.limits.Pids > 0 {
		out = append(out, fmt.Sprintf("the sandbox's process limit (%d) was reached: fork failed", w.limits.Pids))
	}
	return out
}

// diskUsage is what the work tree's changes take on disk: the blocks of every file once.
func (w *Watch) diskUsage() int64 {
	var total int64
	seen := map[uint64]bool{}
	fs.WalkDir(w.disk.FS(), ".", func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile, or unreadable: whatever it holds is not counted
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// watchDisk measures the work tree's changes while the command in process group pgid runs and
// kills the group when they grow past the disk limit (and past what they were when it started:
// a command that deletes files must run): every second, or ten times as long as a measure takes
// when that is longer. stop, called once the command has exited and before it is reaped (its
// group id is still its own), ends the watch, measures again, and says what the disk limit did
// to the command, or that the changes are still over it.
func (w *Watch) watchDisk(pgid int) (stop func() string) {
	if w == nil || w.disk == nil {
		return func() string { return "" }
	}
	w.mu.Lock()
	start := w.diskUsed
	w.mu.Unlock()
	over := func(used int64) bool { return used > w.limits.Disk && used > start }
	quit, done := make(chan struct{}), make(chan int64, 1)
	go func() {
		wait := time.Second
		for {
			select {
			case <-quit:
				done <- -1
				return
			case <-time.After(wait):
			}
			t := time.Now()
			used := w.diskUsage()
			wait = max(time.Second, 10*time.Since(t))
			if over(used) {
				unix.Kill(-pgid, unix.SIGKILL)
				<-quit
				done <- used
				return
			}
		}
	}()
	return func() string {
		close(quit)
		killedAt := <-done
		used := w.diskUsage()
		w.mu.Lock()
		w.diskUsed = used
		w.mu.Unlock()
		switch {
		case killedAt >= 0:
			return fmt.Sprintf("the sandbox's disk limit (%s) was reached: the work tree's changes took %s; the command was killed", config.FormatBytes(w.limits.Disk), config.FormatBytes(killedAt))
		case used > w.limits.Disk:
			return fmt.Sprintf("the sandbox's disk limit (%s) was exceeded: the work tree's changes take %s; delete files to go under it, or the next command that adds to them is killed", config.FormatBytes(w.limits.Disk), config.FormatBytes(used))
		}
		return ""
	}
}

// Close releases what the Watch holds.
func (w *Watch) Close() error {
	if w == nil {
		return nil
	}
	var errs []error
	for _, f := range []*os.File{w.memEvents, w.pidEvents, w.commands, w.tasks} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if w.disk != nil {
		errs = append(errs, w.disk.Close())
	}
	return errors.Join(errs...)
}

// usage is what a command used: the largest resident set of it or of any descendant it waited
// for (ru_maxrss), and its CPU time and theirs. The command is forked from this process, which
// the kernel counts in the command's ru_maxrss at its exec: the peak is never below the agent's
// own resident set (some 25 MiB), however little the command used.
func usage(ps *os.ProcessState) (peakBytes int64, cpu time.Duration) {
	if ps == nil {
		return 0, 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		peakBytes = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return peakBytes, ps.UserTime() + ps.SystemTime()
}

// movesCommands reports whether commands go to the commands' group of their own.
func (w *Watch) movesCommands() bool { return w != nil && w.commands != nil }

// start starts cmd in the commands' group when there is one. On cgroup v1 a child starts in the
// groups of the thread that forks it, so one OS thread of the agent lives in the commands'
// group and forks every command (spawnIn): nothing more per command. Elsewhere (cgroup v2, or a
// binary built with cgo, whose commands already have a thread of their own) the command starts
// held and is moved before it runs (hold).
func (w *Watch) start(cmd *exec.Cmd, shell string) error {
	if !w.movesCommands() {
		return startCommand(cmd)
	}
	if ch := w.spawnIn(); ch != nil {
		r := spawnRequest{cmd: cmd, done: make(chan error, 1)}
		ch <- r
		return <-r.done
	}
	release, err := w.hold(cmd, shell)
	if err != nil {
		return err
	}
	err = startCommand(cmd)
	if rerr := release(err == nil); rerr != nil && err == nil {
		cmd.Process.Kill()
		cmd.Wait()
		err = rerr
	}
	return err
}

// spawnIn returns the channel of the thread that forks commands in their group, starting it the
// first time; nil when there is none (see start).
func (w *Watch) spawnIn() chan spawnRequest {
	w.spawnOnce.Do(func() {
		if w.tasks == nil || spawner != nil {
			return
		}
		ready := make(chan bool, 1)
		ch := make(chan spawnRequest)
		go func() {
			// Locked for good: the thread is in another group than the rest of the agent, and
			// the Go runtime starts no thread from a locked one.
			runtime.LockOSThread()
			if _, err := w.tasks.WriteAt([]byte(strconv.Itoa(unix.Gettid())), 0); err != nil {
				ready <- false
				return // the thread may be in the group or not: it ends with the goroutine
			}
			ready <- true
			for r := range ch {
				r.done <- r.cmd.Start()
			}
		}()
		if <-ready {
			w.spawnCh = ch
		}
	})
	return w.spawnCh
}

// holdScript starts a command held: the shell waits for a line on descriptor 3 before it execs
// the command (argv), and gives up without one. Until then it forks nothing.
const holdScript = `read -r _ <&3 || exit 126; exec 3<&-; exec "$@"`

// hold makes cmd (argv: the command) start held, for release to move it first. The holding
// shell is sh(1), the quickest to start, or shell where the sandbox has none.
func (w *Watch) hold(cmd *exec.Cmd, shell string) (release func(ok bool) error, err error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// Looked up in the sandbox's root, once the agent is in it.
	w.holdOnce.Do(func() {
		w.holdShell = shell
		if p, err := exec.LookPath("sh"); err == nil {
			w.holdShell = p
		}
	})
	sh := w.holdShell
	cmd.Args = append([]string{sh, "-c", holdScript, "sandbox-command"}, cmd.Args...)
	cmd.Path, cmd.Err = sh, nil
	cmd.ExtraFiles = []*os.File{r}
	return func(started bool) error {
		r.Close()
		defer wr.Close()
		if !started {
			return nil
		}
		if _, err := w.commands.WriteAt([]byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			return fmt.Errorf("move the command to its group: %w", err)
		}
		_, err := wr.Write([]byte("\n"))
		return err
	}, nil
}
