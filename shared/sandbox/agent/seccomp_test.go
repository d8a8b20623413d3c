package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// A filter installed in the test process would bind every later test: the seccomp tests re-run
// this test binary as TestSeccompHelperProcess, with seccompHelperEnv naming what it does.
const seccompHelperEnv = "SECCOMP_HELPER"

// Modes of the helper process.
const (
	helperRun       = "run"        // restrictSyscalls, then run the command given, as the agent would
	helperProbe     = "probe"      // restrictSyscalls, then make every call of syscallProbes
	helperProbeBare = "probe-bare" // make every call of syscallProbes without a filter
	helperThreads   = "threads"    // install the filter while other threads run, then check them all
)

const (
	helperFilterFail = 100 // the helper's exit status when restrictSyscalls fails
	probeAbsent      = -1  // a probe's result when its call does not exist on this architecture
)

// TestSeccompHelperProcess is the helper process; run by go test, it skips.
func TestSeccompHelperProcess(t *testing.T) {
	mode := os.Getenv(seccompHelperEnv)
	if mode == "" {
		t.Skip("the subprocess of the seccomp tests")
	}
	var args []string
	if i := slices.Index(os.Args, "--"); i >= 0 {
		args = os.Args[i+1:]
	}
	if mode == helperThreads {
		os.Exit(helperThreadsMain())
	}
	if mode != helperProbeBare {
		if err := restrictSyscalls(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(helperFilterFail)
		}
	}
	switch mode {
	case helperRun:
		os.Exit(runCommand(args))
	case helperProbe, helperProbeBare:
		for _, p := range syscallProbes() {
			fmt.Printf("%s\t%d\n", p.name, p.call())
		}
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	os.Exit(2)
}

// runCommand runs argv with the helper's standard streams and returns its exit status, 128 plus
// the signal when a signal ended it.
func runCommand(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	fmt.Fprintln(os.Stderr, err)
	return 127
}

// helperThreadsMain installs the filter while other threads are busy or asleep, then checks that
// every thread has it and no_new_privs, and that goroutines can still start commands together.
func helperThreadsMain() int {
	stop := make(chan struct{})
	var running sync.WaitGroup
	for i := range 6 {
		running.Add(1)
		go func() {
			defer running.Done()
			runtime.LockOSThread() // one thread each, so the process surely has several
			defer runtime.UnlockOSThread()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					time.Sleep(time.Millisecond)
				} else {
					_ = n * n // busy
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := restrictSyscalls(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return helperFilterFail
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, task := range tasks {
		status, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, want := range []string{"\nSeccomp:\t2\n", "\nNoNewPrivs:\t1\n"} {
			if !strings.Contains(string(status), want) {
				fmt.Fprintf(os.Stderr, "thread %s lacks %q\n", task.Name(), strings.TrimSpace(want))
				return 1
			}
		}
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			out, err := exec.Command("sh", "-c", "echo started").Output()
			if err == nil && string(out) != "started\n" {
				err = fmt.Errorf("output %q", out)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, "command from a goroutine:", err)
			return 1
		}
	}
	close(stop)
	running.Wait()
	fmt.Printf("%d threads filtered\n", len(tasks))
	return 0
}

// runHelper runs the helper process in mode with args and returns its combined output and exit
// status. It has a session of its own: no probe can reach the terminal of whoever runs the tests.
func runHelper(t *testing.T, mode string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestSeccompHelperProcess$", "--"}, args...)...)
	// The race detector would linger a second at every successful exit of the helper.
	cmd.Env = append(os.Environ(), seccompHelperEnv+"="+mode, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("helper %s %q: %v", mode, args, err)
	}
	code := cmd.ProcessState.ExitCode()
	if code == helperFilterFail {
		t.Fatalf("restrictSyscalls failed: %s", out)
	}
	return string(out), code
}

// requireTools skips the test when one of the programs it runs is missing here.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed", n)
		}
	}
}

// requireRoot skips the test unless it runs as root: only then is EPERM the filter's answer
// and not the kernel's.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: without it the kernel itself refuses most of these calls")
	}
}

// An agent's command tries what breaks out of a container, or weakens it, with the tools it
// finds; every attempt must fail as not permitted.
func TestSeccompDeniesContainerEscapes(t *testing.T) {
	requireRoot(t)
	target := t.TempDir()
	// Were the filter to let it through, the mount is undone.
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	notSwap := filepath.Join(t.TempDir(), "swapfile")
	if err := os.WriteFile(notSwap, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const eperm = "Operation not permitted"
	for _, tc := range []struct {
		name    string
		argv    []string
		refusal string // how the program reports EPERM
	}{
		{"user namespace", []string{"unshare", "--user", "true"}, eperm},
		{"mount namespace", []string{"unshare", "--mount", "true"}, eperm},
		{"network namespace", []string{"unshare", "--net", "true"}, eperm},
		{"pid namespace", []string{"unshare", "--pid", "--fork", "true"}, eperm},
		{"mount", []string{"mount", "-t", "tmpfs", "x", target}, "permission denied"},
		{"swapoff", []string{"swapoff", notSwap}, "Not superuser"}, // a file, not a swap area: EINVAL unfiltered
		{"keyring", []string{"python3", "-c", `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
# add_key("user", "escape", "x", 1, KEY_SPEC_SESSION_KEYRING)
if libc.syscall(248 if os.uname().machine == "x86_64" else 217, b"user", b"escape", b"x", 1, -3) < 0:
    sys.exit(os.strerror(ctypes.get_errno()))`}, eperm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTools(t, tc.argv[0])
			out, code := runHelper(t, helperRun, tc.argv...)
			if code == 0 {
				t.Fatalf("%q succeeded: %s", tc.argv, out)
			}
			if !strings.Contains(out, tc.refusal) {
				t.Errorf("%q failed for another reason than EPERM (status %d): %s", tc.argv, code, out)
			}
			t.Logf("status %d: %s", code, strings.TrimSpace(out))
		})
	}
}

// A probe makes one system call with arguments that, without the filter too, do no harm (a
// missing path, a bad descriptor, invalid flags, a length the kernel refuses).
type syscallProbe struct {
	name string
	// want is the filter's answer: EPERM or ENOSYS for a denied call; 0 for an allowed one,
	// which must get the kernel's own answer.
	want unix.Errno
	call func() int // the errno, 0 on success, probeAbsent where the call does not exist
}

// probeStrings keep the C strings handed to probes alive: a uintptr does not.
var probeStrings [][]byte

func cstr(s string) uintptr {
	b := append([]byte(s), 0)
	probeStrings = append(probeStrings, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// rawProbe calls the system call named on this architecture.
func rawProbe(name string, args ...uintptr) func() int {
	return func() int {
		info, err := arch.GetInfo("")
		if err != nil {
			panic(err)
		}
		nr, ok := info.SyscallNames[name]
		if !ok {
			return probeAbsent
		}
		var a [6]uintptr
		copy(a[:], args)
		_, _, errno := unix.Syscall6(uintptr(nr), a[0], a[1], a[2], a[3], a[4], a[5])
		return int(errno)
	}
}

func syscallProbes() []syscallProbe {
	const (
		missing = "/nonexistent-seccomp-probe"
		noPid   = 0x7fffffff
	)
	badFD := ^uintptr(0) // -1
	p := func(want unix.Errno, name string, args ...uintptr) syscallProbe {
		return syscallProbe{name: name, want: want, call: rawProbe(name, args...)}
	}
	named := func(want unix.Errno, label, name string, args ...uintptr) syscallProbe {
		return syscallProbe{name: label, want: want, call: rawProbe(name, args...)}
	}
	eperm := unix.EPERM
	probes := []syscallProbe{
		p(eperm, "mount", cstr("none"), cstr(missing), cstr("tmpfs"), 0, 0),
		p(eperm, "umount2", cstr(missing), 0),
		p(eperm, "pivot_root", cstr(missing), cstr(missing)),
		p(eperm, "move_mount", badFD, cstr(""), badFD, cstr(""), 0),
		p(eperm, "open_tree", badFD, cstr(missing), 0),
		p(eperm, "open_tree_attr", badFD, cstr(missing), 0, 0, 0),
		p(eperm, "fsopen", cstr("nonexistent-seccomp-probe"), 0),
		p(eperm, "fsconfig", badFD, 0, 0, 0, 0),
		p(eperm, "fsmount", badFD, 0, 0),
		p(eperm, "fspick", badFD, cstr(missing), 0),
		p(eperm, "mount_setattr", badFD, cstr(missing), 0, 0, 0),
		p(eperm, "unshare", unix.CLONE_NEWUSER), // a threaded process cannot: EINVAL
		p(eperm, "setns", badFD, unix.CLONE_NEWNET),
		p(eperm, "sethostname", cstr("x"), 100000), // too long
		p(eperm, "setdomainname", cstr("x"), 100000),
		p(eperm, "quotactl", 0, 0, 0, 0),
		p(eperm, "quotactl_fd", badFD, 0, 0, 0),
		p(eperm, "lookup_dcookie", 0, 0, 0),
		p(eperm, "fanotify_init", 0xffffffff, 0),
		p(eperm, "lsm_get_self_attr", 0, 0, 0, 0),
		p(eperm, "lsm_set_self_attr", 0, 0, 0, 0),
		p(eperm, "lsm_list_modules", 0, 0, 0),
		p(eperm, "init_module", 0, 0, cstr("")),
		p(eperm, "finit_module", badFD, cstr(""), 0),
		p(eperm, "delete_module", cstr("nonexistent_seccomp_probe"), unix.O_NONBLOCK),
		p(eperm, "create_module", 0, 0),
		p(eperm, "get_kernel_syms", 0),
		p(eperm, "query_module", 0, 0, 0, 0, 0),
		p(eperm, "kexec_load", 0, 1000, 0, 0x8000), // too many segments, unknown flag
		p(eperm, "kexec_file_load", badFD, badFD, 0, 0, 0),
		p(eperm, "reboot", 0, 0, 0, 0), // no magic
		p(eperm, "swapon", cstr(missing), 0),
		p(eperm, "swapoff", cstr(missing)),
		p(eperm, "acct", cstr(missing)),
		p(eperm, "keyctl", unix.KEYCTL_GET_KEYRING_ID, ^uintptr(1) /* KEY_SPEC_PROCESS_KEYRING */, 0),
		p(eperm, "add_key", cstr("user"), cstr("seccomp-probe"), cstr("x"), 1, ^uintptr(1)),
		p(eperm, "request_key", cstr("user"), cstr("seccomp-probe-missing"), 0, 0),
		p(eperm, "bpf", 0, 0, 0),
		p(eperm, "perf_event_open", 0, 0, badFD, badFD, 0),
		p(eperm, "userfaultfd", 0xffffffff),
		p(eperm, "io_uring_setup", 0, 0),
		p(eperm, "io_uring_enter", badFD, 0, 0, 0, 0, 0),
		p(eperm, "io_uring_register", badFD, 0, 0, 0),
		p(eperm, "settimeofday", 0, 0), // sets nothing
		p(eperm, "clock_settime", unix.CLOCK_MONOTONIC, 0),
		p(eperm, "adjtimex", 0),
		p(eperm, "clock_adjtime", unix.CLOCK_REALTIME, 0),
		p(eperm, "syslog", 10, 0, 0), // SYSLOG_ACTION_SIZE_BUFFER
		p(eperm, "iopl", 4),          // no such level
		p(eperm, "ioperm", 0, 0, 0),  // empty range
		p(eperm, "vhangup"),          // the helper has no terminal
		p(eperm, "open_by_handle_at", badFD, 0, 0),
		p(eperm, "name_to_handle_at", badFD, cstr(missing), 0, 0, 0),
		p(eperm, "kcmp", uintptr(os.Getpid()), uintptr(os.Getpid()), 0, 0, 0),
		p(eperm, "pidfd_getfd", badFD, badFD, 0),
		p(eperm, "process_madvise", badFD, 0, 0, 0, 0),
		p(eperm, "mbind", 0, 0, 0, 0, 0, 0), // empty range
		p(eperm, "set_mempolicy", 0, 0, 0),  // MPOL_DEFAULT, as it is
		p(eperm, "get_mempolicy", 0, 0, 0, 0, 0),
		p(eperm, "set_mempolicy_home_node", 0, 0, 0, 0),
		p(eperm, "migrate_pages", noPid, 0, 0, 0),
		p(eperm, "move_pages", noPid, 0, 0, 0, 0, 0),
		p(eperm, "_sysctl", 0),
		p(eperm, "sysfs", 3),
		p(eperm, "ustat", 0, 0),
		p(eperm, "uselib", cstr(missing)),
		p(eperm, "nfsservctl", 0, 0, 0),

		// clone: CLONE_THREAD without CLONE_SIGHAND makes the kernel refuse any clone (EINVAL).
		named(0, "clone CLONE_THREAD", "clone", unix.CLONE_THREAD, 0, 0, 0, 0),
		named(unix.ENOSYS, "clone3", "clone3", 0, 0),

		named(0, "personality query", "personality", 0xffffffff),
		named(eperm, "personality ADDR_NO_RANDOMIZE", "personality", 0x0040000),
		named(0, "personality PER_LINUX", "personality", 0),

		named(0, "socket AF_INET", "socket", unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0),
		named(0, "socket AF_UNIX", "socket", unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0),
		named(0, "socket AF_NETLINK", "socket", unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE),
		named(eperm, "socket AF_ALG", "socket", unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0),
		named(eperm, "socket AF_VSOCK", "socket", unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0),
		named(eperm, "socket AF_MCTP+1", "socket", unix.AF_MCTP+1, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0),

		// Debuggers and chroot, which Docker allows too.
		p(0, "ptrace", unix.PTRACE_PEEKDATA, noPid, 0, 0),
		p(0, "process_vm_readv", noPid, 0, 0, 0, 0, 0),
		p(0, "chroot", cstr(missing)),
	}
	if strconv.IntSize == 64 {
		// The same values with garbage above bit 31, which the kernel drops from an int.
		high := uint64(1) << 32
		probes = append(probes,
			named(eperm, "personality PER_LINUX above 32 bits", "personality", uintptr(high)),
			named(eperm, "socket AF_ALG above 32 bits", "socket", uintptr(high|unix.AF_ALG), unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0))
	}
	for _, ns := range []struct {
		name string
		flag uintptr
	}{
		{"CLONE_NEWNS", unix.CLONE_NEWNS}, {"CLONE_NEWUSER", unix.CLONE_NEWUSER},
		{"CLONE_NEWPID", unix.CLONE_NEWPID}, {"CLONE_NEWNET", unix.CLONE_NEWNET},
		{"CLONE_NEWUTS", unix.CLONE_NEWUTS}, {"CLONE_NEWIPC", unix.CLONE_NEWIPC},
		{"CLONE_NEWCGROUP", unix.CLONE_NEWCGROUP},
	} {
		probes = append(probes, named(eperm, "clone "+ns.name, "clone", ns.flag|unix.CLONE_THREAD, 0, 0, 0, 0))
	}
	return probes
}

// Every denied call, made directly by a Go program: the filter answers EPERM (ENOSYS for
// clone3), where without it the kernel gives its own answer; allowed calls get the kernel's
// answer either way.
func TestSeccompDeniedSyscalls(t *testing.T) {
	requireRoot(t)
	parse := func(out string, code int) map[string]int {
		if code != 0 {
			t.Fatalf("probe helper exited with %d: %s", code, out)
		}
		got := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			name, errno, ok := strings.Cut(sc.Text(), "\t")
			n, err := strconv.Atoi(errno)
			if !ok || err != nil {
				continue // the test framework's own lines
			}
			got[name] = n
		}
		return got
	}
	filtered := parse(runHelper(t, helperProbe))
	bare := parse(runHelper(t, helperProbeBare))
	for _, p := range syscallProbes() {
		got, ok := filtered[p.name]
		if !ok {
			t.Errorf("%s: no result", p.name)
			continue
		}
		if got == probeAbsent {
			continue // not a call of this architecture
		}
		switch {
		case p.want != 0 && got != int(p.want):
			t.Errorf("%s: filtered: %v, want %v (unfiltered: %v)", p.name, unix.Errno(got), p.want, unix.Errno(bare[p.name]))
		case p.want != 0 && bare[p.name] == int(p.want):
			t.Logf("%s: the kernel answers %v without the filter too", p.name, p.want)
		case p.want == 0 && got != bare[p.name]:
			t.Errorf("%s: filtered: %v, unfiltered: %v; an allowed call must get the kernel's answer",
				p.name, unix.Errno(got), unix.Errno(bare[p.name]))
		}
	}
}

// Every name on the deny list is a system call of amd64 or arm64 (a misspelt name would be
// skipped silently), and every one that exists here is probed.
func TestSeccompDenyListNames(t *testing.T) {
	native, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	probed := map[string]bool{}
	for _, p := range syscallProbes() {
		probed[p.name] = true
	}
	for _, n := range deniedSyscalls {
		_, amd64 := arch.X86_64.SyscallNames[n]
		_, arm64 := arch.AARCH64.SyscallNames[n]
		if !amd64 && !arm64 {
			t.Errorf("%s is a system call of neither amd64 nor arm64", n)
		}
		if _, here := native.SyscallNames[n]; here && !probed[n] {
			t.Errorf("%s is denied but not probed", n)
		}
	}
	for _, n := range []string{"mount", "unshare", "setns", "clone", "clone3", "keyctl", "bpf", "personality", "socket"} {
		if _, ok := arch.AARCH64.SyscallNames[n]; !ok {
			t.Errorf("%s is unknown on arm64", n)
		}
		if _, ok := arch.X86_64.SyscallNames[n]; !ok {
			t.Errorf("%s is unknown on amd64", n)
		}
	}
}

// What an agent ordinarily does keeps working under the filter: shells, pipes, background jobs,
// git, Python threads and subprocesses (glibc's clone3 falls back to clone), the Go toolchain,
// a debugger.
func TestSeccompKeepsOrdinaryWork(t *testing.T) {
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.21\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from go\") }\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := t.TempDir()
	for _, tc := range []struct {
		name string
		argv []string
		want string // in the output
	}{
		{"pipe", []string{"bash", "-c", "echo hi | cat"}, "hi\n"},
		{"background job", []string{"sh", "-c", "sleep 0.1 & wait; echo waited"}, "waited\n"},
		{"git version", []string{"git", "--version"}, "git version"},
		{"git commit", []string{"sh", "-c", "cd " + repo + " && git init -q && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m x && git log --oneline | wc -l"}, "1\n"},
		{"python threads", []string{"python3", "-c", `import threading, subprocess
t = threading.Thread(target=lambda: subprocess.run(["true"], check=True))
t.start(); t.join(); print("python ok")`}, "python ok\n"},
		{"go version", []string{"go", "version"}, "go version go"},
		{"go env", []string{"go", "env", "GOROOT"}, "/"},
		{"go build", []string{"sh", "-c", "cd " + mod + " && go build -o hello . && ./hello"}, "hello from go\n"},
		{"strace", []string{"strace", "-f", "-o", "/dev/null", "sh", "-c", "true"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTools(t, tc.argv[0])
			out, code := runHelper(t, helperRun, tc.argv...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("%q: status %d, output %q, want %q in it", tc.argv, code, out, tc.want)
			}
		})
	}
}

// The filter reaches every thread, including the ones running when it is installed, and Go
// programs keep starting goroutines and commands.
func TestSeccompCoversEveryThread(t *testing.T) {
	out, code := runHelper(t, helperThreads)
	if code != 0 || !strings.Contains(out, "threads filtered") {
		t.Fatalf("status %d: %s", code, out)
	}
	t.Log(strings.TrimSpace(out))
}

// No command under the filter gains privileges by executing a set-user-id or file-capability
// program, and the filter is on.
func TestSeccompSetsNoNewPrivs(t *testing.T) {
	out, code := runHelper(t, helperRun, "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status")
	if code != 0 || !strings.Contains(out, "NoNewPrivs:\t1") || !strings.Contains(out, "Seccomp:\t2") {
		t.Fatalf("status %d: %q", code, out)
	}
}

// A 64-bit program may still enter the kernel through the i386 ABI (int 0x80), where the deny
// list's numbers mean other calls: such a call kills the process.
func TestSeccompKillsOtherABIs(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the other ABI tried is i386, on amd64")
	}
	requireTools(t, "python3")
	// Makes the i386 system call nr with one argument, through int 0x80, and prints its result.
	const int80 = `import ctypes, mmap, sys
nr, arg = int(sys.argv[1]), int(sys.argv[2])
code = (b"\x53" + b"\xb8" + nr.to_bytes(4, "little") + b"\xbb" + arg.to_bytes(4, "little")
        + b"\xcd\x80" + b"\x5b" + b"\xc3")  # push rbx; mov eax, nr; mov ebx, arg; int 0x80; pop rbx; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
call = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
print(call(), flush=True)`
	// i386 getpid (20), without the filter, tells whether this kernel runs i386 calls at all.
	out, err := exec.Command("python3", "-c", int80, "20", "0").CombinedOutput()
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || perr != nil || pid <= 0 {
		t.Skipf("this kernel does not run i386 system calls (%v): %s", err, out)
	}
	// i386 unshare (310) of CLONE_NEWUSER, which the deny list names only by its amd64 number.
	out2, code := runHelper(t, helperRun, "python3", "-c", int80, "310", strconv.Itoa(unix.CLONE_NEWUSER))
	if code != 128+int(unix.SIGSYS) {
		t.Fatalf("i386 unshare under the filter: status %d, want death by SIGSYS: %s", code, out2)
	}
}
