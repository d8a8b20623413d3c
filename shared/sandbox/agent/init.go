package agent

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitOptions set up the sandbox before the agent starts.
type InitOptions struct {
	Loopback bool // bring up lo (a fresh network namespace has it down)
	// Root, when set, gives the sandbox a root file system of its own (the host is then not
	// visible at all), drops the dangerous capabilities for commands and installs the seccomp
	// filter.
	Root *RootOptions
}

// RunInit is the first process of a sandbox: it starts the agent (argv) as its child and reaps
// every process that ends up orphaned under it, which the agent itself cannot do without
// stealing its own commands' exit statuses. In a pid namespace it is pid 1, and when it exits
// the kernel kills everything in the namespace; outside one it is a child subreaper, so every
// descendant stays in its process tree where Stop can find it. It forwards SIGTERM and SIGINT to
// the agent and exits with the agent's status.
func RunInit(argv []string, opts InitOptions) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init: subreaper:", err)
	}
	if err := Setup(opts); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}
	// The agent's parent-death signal follows this thread: keep the whole init on it.
	runtime.LockOSThread()
	// Notify before starting the child so no signal between the two is lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		// The agent never outlives its init: a killed init must not leave it answering.
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init: start agent:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox init: wait:", err)
			return 1
		}
		if got != pid {
			continue // an orphan, reaped so it does not linger as a zombie
		}
		// The sandbox is its agent: nothing may outlive it (in a pid namespace the kernel sees
		// to that when this process exits; outside one the orphans are this subreaper's).
		endChildren()
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// endChildren kills every child of this process, and the children they leave to it as they
// die, until it has none.
func endChildren() {
	self := os.Getpid()
	for {
		for _, pid := range childrenOf(self) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err == syscall.ECHILD {
			return
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Setup prepares a sandbox's fresh namespaces before the agent serves: lo up, and its own root
// file system with the work tree in it. It runs in the init, or in the agent itself when another
// program is the init.
func Setup(opts InitOptions) error {
	if opts.Loopback {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring up lo: %w", err)
		}
	}
	if opts.Root != nil {
		if err := buildRoot(*opts.Root); err != nil {
			return err
		}
		if err := dropCaps(); err != nil {
			return err
		}
		// What the runtime passed (the host's directories, as descriptors) is not for commands.
		if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
			return fmt.Errorf("descriptors: %w", err)
		}
		// Last: the set-up above needs the calls the filter denies.
		return restrictSyscalls()
	}
	// Without a root of its own (Cloud Run: the agent is the container's root, its secret in
	// the environment of the container's first process), commands still lose CAP_SYS_PTRACE and
	// the rest, so that none may read a non-dumpable agent's memory or environment. An agent
	// not allowed to narrow them (unprivileged: the local process runtime) has none to give.
	if err := dropCaps(); err != nil && !errors.Is(err, unix.EPERM) {
		fmt.Fprintln(os.Stderr, "sandbox: the commands keep the agent's capabilities:", err)
	}
	return nil
}

// loopbackUp brings up lo, which a fresh network namespace has down: tests that listen on
// 127.0.0.1 must work in a sandbox that has no other network.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
