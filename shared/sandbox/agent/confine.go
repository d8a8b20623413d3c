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
// confinement below or reach around it.
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

// confine runs in the sandbox's own mount namespace, before the agent serves. The host's file
// system stays visible (the toolchains live there), but:
//   - it is read-only, except the sandbox's own directory (its work tree), a private /tmp and
//     /var/tmp, and the caches commands expect to write (HOME, GOCACHE, ...), which become
//     overlays whose changes live in the private /tmp and vanish with the sandbox;
//   - hide (the server's data directory: its database, its keys, the other sandboxes) is
//     covered by an empty tmpfs, with keep (this sandbox's own directory) bound back in place;
//   - /dev is a minimal tmpfs (null, zero, full, random, urandom, tty, its own pts and shm), so
//     no raw disk is within reach;
//   - commands lose every capability outside keptCaps, so none of this can be undone.
func confine(hide, keep string) error {
	hide, keep = filepath.Clean(hide), filepath.Clean(keep)
	if hide == "/" || !strings.HasPrefix(keep, hide+"/") {
		return fmt.Errorf("confine: the sandbox directory %s is not inside the hidden %s", keep, hide)
	}
	// A descriptor of keep, opened before the mounts below cover its path (the data dir may
	// itself be under /tmp), to bind it back in place afterwards.
	fd, err := unix.Open(keep, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	defer unix.Close(fd)
	writable := cacheDirs(hide)
	if err := unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("read-only host file system: %w", err)
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return fmt.Errorf("private %s: %w", d, err)
		}
	}
	for i, d := range writable {
		upper, work := fmt.Sprintf("/tmp/.sandbox-layers/%d/upper", i), fmt.Sprintf("/tmp/.sandbox-layers/%d/work", i)
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return fmt.Errorf("confine: %w", err)
		}
		if err := os.MkdirAll(work, 0o700); err != nil {
			return fmt.Errorf("confine: %w", err)
		}
		if err := unix.Mount("overlay", d, "overlay", 0, "lowerdir="+d+",upperdir="+upper+",workdir="+work); err != nil {
			return fmt.Errorf("writable %s: %w", d, err)
		}
	}
	// After the overlays: a data dir inside HOME is covered on top of HOME's overlay, whose
	// lower layer would otherwise show it.
	if hide != "/tmp" && !strings.HasPrefix(hide, "/tmp/") {
		if err := unix.Mount("tmpfs", hide, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=1m"); err != nil {
			return fmt.Errorf("hide %s: %w", hide, err)
		}
	}
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	// MS_REC brings the work tree's overlay, mounted below keep, along; the bind copies the
	// read-only flag, which is then cleared on keep and everything below it.
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), keep, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("confine: bind %s back: %w", keep, err)
	}
	if err := unix.MountSetattr(-1, keep, unix.AT_RECURSIVE, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("confine: %s writable: %w", keep, err)
	}
	if err := minimalDev(); err != nil {
		return fmt.Errorf("private /dev: %w", err)
	}
	return dropCaps()
}

// cacheDirs are the directories outside the work tree that commands expect to write: HOME and
// the toolchains' caches named in the environment, when they exist, are not inside one
// another, and can name an overlay layer (no ',' or ':'). The data dir never is one.
func cacheDirs(hide string) []string {
	var out []string
	for _, k := range []string{"HOME", "GOPATH", "GOCACHE", "GOMODCACHE", "XDG_CACHE_HOME", "PYENV_ROOT"} {
		d := filepath.Clean(os.Getenv(k))
		if !filepath.IsAbs(d) || d == "/" || strings.ContainsAny(d, ",:") || d == hide {
			continue
		}
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		inside := false
		for _, o := range out {
			if d == o || strings.HasPrefix(d, o+"/") {
				inside = true
			}
		}
		if !inside && !strings.HasPrefix(d, "/tmp/") && !strings.HasPrefix(d, hide+"/") {
			out = append(out, d)
		}
	}
	return out
}

// minimalDev replaces /dev with a tmpfs holding the usual harmless devices, bound from the
// host's (descriptors first: the tmpfs hides them), and the usual links.
func minimalDev() error {
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
	if err := unix.Mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return err
	}
	for n, fd := range fds {
		p := "/dev/" + n
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
		if err := os.Symlink(target, "/dev/"+n); err != nil {
			return err
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// Terminals for tools that want one; a sandbox without them still works.
	unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	return unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
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
