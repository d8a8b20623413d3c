package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// keptCaps is what commands in a confined sandbox may still do as root: Docker's default
// capability set. Everything else (mounting, loading modules, tracing, raw devices, the clock,
// rebooting, opening files by handle) leaves the bounding set, so no command can undo the
// sandbox's root file system (rootfs.go) or reach around it.
var keptCaps = []struct {
	num  int
	name string
}{
	{unix.CAP_CHOWN, "chown"}, {unix.CAP_DAC_OVERRIDE, "dac_override"}, {unix.CAP_FSETID, "fsetid"},
	{unix.CAP_FOWNER, "fowner"}, {unix.CAP_MKNOD, "mknod"}, {unix.CAP_NET_RAW, "net_raw"},
	{unix.CAP_SETGID, "setgid"}, {unix.CAP_SETUID, "setuid"}, {unix.CAP_SETFCAP, "setfcap"},
	{unix.CAP_SETPCAP, "setpcap"}, {unix.CAP_NET_BIND_SERVICE, "net_bind_service"},
	{unix.CAP_SYS_CHROOT, "sys_chroot"}, {unix.CAP_KILL, "kill"}, {unix.CAP_AUDIT_WRITE, "audit_write"},
}

// commandPrefix wraps every command the agent starts when the bounding set could be narrowed
// neither for the whole process nor for the spawner's thread (see dropCaps). It is
// process-wide, like capabilities.
var commandPrefix []string

// spawner, when not nil, starts every command of the agent on one OS thread whose own bounding
// set was narrowed (see dropCaps): a child inherits the bounding set of the thread that forks
// it.
var spawner chan spawnRequest

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// startCommand starts cmd with the narrowed bounding set: on the spawner's thread when there is one,
// else in place (the whole process was narrowed, or commandPrefix wraps cmd).
func startCommand(cmd *exec.Cmd) error {
	if spawner == nil {
		return cmd.Start()
	}
	r := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	spawner <- r
	return <-r.done
}

// startSpawner narrows the bounding set of one locked OS thread to keptCaps and starts commands
// there from then on. That thread is never unlocked, so no other goroutine runs on it; the Go
// runtime does not clone new threads from a locked one.
func startSpawner(kept map[int]bool, last int) error {
	ready := make(chan error, 1)
	requests := make(chan spawnRequest)
	go func() {
		runtime.LockOSThread()
		for c := 0; c <= last; c++ {
			if kept[c] {
				continue
			}
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				ready <- fmt.Errorf("drop capability %d on the spawner's thread: %w", c, err)
				return // the thread, locked and dirty, ends with the goroutine
			}
		}
		ready <- nil
		for r := range requests {
			r.done <- r.cmd.Start()
		}
	}()
	if err := <-ready; err != nil {
		return err
	}
	spawner = requests
	return nil
}

// minimalDev makes dev (the sandbox's /dev) a tmpfs holding the usual harmless devices, bound
// from the host's (descriptors first: the tmpfs may hide them), and the usual links.
func minimalDev(dev string) error {
	nodes := []string{"null", "zero", "full", "random", "urandom", "tty"}
	fds := map[string]int{}
	for _, n := range nodes {
		fd, err := unix.Open("/dev/"+n, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // absent on this host: the sandbox does without
		}
		defer unix.Close(fd)
		fds[n] = fd
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return err
	}
	for n, fd := range fds {
		p := filepath.Join(dev, n)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
	}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
	for n, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, n)); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	// Terminals for tools that want one; a sandbox without them still works.
	unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	return unix.Mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
}

// dropCaps removes from the bounding set every capability outside keptCaps: the agent keeps
// its own, but no command it starts can have them again. The bounding set belongs to each
// thread, so it is narrowed on all of the process's threads at once; a binary built with cgo
// cannot do that, and then it is narrowed on one thread that starts every command (see startCommand).
// Only if that fails too is every command started through setpriv(1), which costs a couple of
// milliseconds per command.
func dropCaps() error {
	kept := map[int]bool{}
	names := []string{"-all"}
	for _, c := range keptCaps {
		kept[c.num] = true
		names = append(names, "+"+c.name)
	}
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if kept[c] {
			continue
		}
		_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
		switch errno {
		case 0, unix.EINVAL:
		case unix.ENOTSUP:
			if err := startSpawner(kept, last); err == nil {
				return nil
			}
			setpriv, err := exec.LookPath("setpriv")
			if err != nil {
				return errors.New("cannot narrow the capabilities of commands: the binary uses cgo and setpriv(1) is missing")
			}
			commandPrefix = []string{setpriv, "--bounding-set", strings.Join(names, ","), "--"}
			return nil
		default:
			return fmt.Errorf("drop capability %d: %w", c, errno)
		}
	}
	return nil
}
