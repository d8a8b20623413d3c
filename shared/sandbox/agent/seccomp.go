package agent

import (
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter of a sandbox is a deny list: everything is allowed except what Docker's
// default profile (github.com/moby/profiles/seccomp v0.3.0) withholds from a container that
// has only Docker's default capabilities (keptCaps), plus a few calls below that Docker
// allows. Docker writes an allow list, which also shuts system calls newer than the profile;
// a deny list is shorter and simpler to keep right, and newer calls stay behind the
// capabilities that dropCaps drops. Denied calls fail with EPERM, as in Docker.
//
// Names unknown to the architecture are skipped (arm64 has no iopl, ioperm, _sysctl, sysfs,
// ustat, uselib nor the pre-2.6 module calls); the calls only 32-bit ABIs have (stime, vm86,
// vm86old, umount, socketcall...) need no name: no system call of another ABI gets through
// (see restrictSyscalls).
var deniedSyscalls = []string{
	// Mounts, namespaces and the root: what undoes the sandbox's root file system, or builds a user namespace
	// (which needs no capability) whose root reaches the kernel's namespaced interfaces.
	"mount", "umount2", "pivot_root", "move_mount", "open_tree", "open_tree_attr",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns", "sethostname", "setdomainname",
	"quotactl", "quotactl_fd", "lookup_dcookie", "fanotify_init",
	"lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
	// The kernel itself: modules, kexec, reboot, swap, accounting.
	"init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms",
	"query_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct",
	// Kernel keyrings are not namespaced: their keys belong to the host.
	"keyctl", "add_key", "request_key",
	// Large, often exploited kernel surfaces.
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	// The clock. Docker allows adjtimex and clock_adjtime (without CAP_SYS_TIME they only
	// read); they are denied here as well: nothing a sandbox runs needs them.
	"settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
	// Kernel log, raw I/O ports, terminals, file handles (open_by_handle_at walks around any
	// mount; name_to_handle_at, which Docker allows, only feeds it).
	"syslog", "iopl", "ioperm", "vhangup", "open_by_handle_at", "name_to_handle_at",
	// Other processes' descriptors and memory policy: Docker grants them only with
	// CAP_SYS_PTRACE or CAP_SYS_NICE. ptrace, process_vm_readv and process_vm_writev stay
	// allowed, as in Docker on kernels from 4.8 (whose seccomp cannot be bypassed by a
	// tracer): debuggers and strace are legitimate in a sandbox.
	"kcmp", "pidfd_getfd", "process_madvise",
	"mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages",
	// Obsolete.
	"_sysctl", "sysfs", "ustat", "uselib", "nfsservctl",
}

// namespaceFlags are the flags of clone(2) that create a namespace. CLONE_NEWTIME is not
// among them: in clone(2) its bit belongs to the exit signal, and the calls that take it,
// unshare and clone3, are denied whatever their flags.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP

// allowedPersonas are the only arguments of personality(2) Docker allows: Linux, 32-bit
// Linux, either with a 2.6 uname, and the query 0xffffffff. The others (ADDR_NO_RANDOMIZE,
// READ_IMPLIES_EXEC, ...) weaken the hardening of the programs a command executes.
var allowedPersonas = []uint64{0, 0x0008, 0x20000, 0x20008, 0xffffffff}

// deniedSocketDomains are the address families below AF_MCTP that Docker does not allow:
// AF_ALG (the kernel's crypto API), AF_VSOCK (the host's side of a virtual machine) and the
// families Linux removed for want of maintenance (AX.25, NET/ROM, ROSE, IPX, AppleTalk,
// DECnet, Econet, ATM SVC, IrDA, WAN pipe, ISDN, CAIF). Every family from AF_MCTP+1 on is
// denied too.
var deniedSocketDomains = []uint64{
	unix.AF_AX25, unix.AF_IPX, unix.AF_APPLETALK, unix.AF_NETROM, unix.AF_ROSE, unix.AF_DECnet,
	unix.AF_ECONET, unix.AF_ATMSVC, unix.AF_IRDA, unix.AF_WANPIPE, unix.AF_ISDN, unix.AF_CAIF,
	unix.AF_ALG, unix.AF_VSOCK,
}

// sandboxPolicy is the deny list for the architecture this binary runs on.
func sandboxPolicy(native *arch.Info) seccomp.Policy {
	eperm := seccomp.ActionErrno | seccomp.Action(unix.EPERM)
	var names []string
	for _, n := range deniedSyscalls {
		if _, ok := native.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	// The filter compares a 64-bit register where socket(2) and personality(2) read an int:
	// a denial on equality would miss the same value with garbage above bit 31. So a domain
	// is denied by equality only below AF_MCTP+1, where every larger value, garbage included,
	// is denied as well; a persona is denied unless it equals an allowed one exactly.
	socket := []seccomp.NameWithConditions{{Name: "socket", Conditions: seccomp.ArgumentConditions{
		{Argument: 0, Operation: seccomp.GreaterOrEqual, Value: unix.AF_MCTP + 1}}}}
	for _, d := range deniedSocketDomains {
		socket = append(socket, seccomp.NameWithConditions{Name: "socket", Conditions: seccomp.ArgumentConditions{
			{Argument: 0, Operation: seccomp.Equal, Value: d}}})
	}
	var persona seccomp.ArgumentConditions
	for _, p := range allowedPersonas {
		persona = append(persona, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: p})
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: eperm, Names: names},
			// The flags are clone's first argument on amd64 and arm64 (not on s390x). The Go
			// runtime's threads and fork/exec never set a namespace flag.
			{Action: eperm, NamesWithCondtions: []seccomp.NameWithConditions{{Name: "clone",
				Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: namespaceFlags}}}}},
			// clone3's flags are in a struct the filter cannot read: ENOSYS makes glibc (threads,
			// posix_spawn) fall back to clone, as Docker does. Go uses clone3 only for
			// SysProcAttr.UseCgroupFD or CLONE_NEWTIME, which the agent does not use.
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
			{Action: eperm, NamesWithCondtions: []seccomp.NameWithConditions{{Name: "personality", Conditions: persona}}},
			{Action: eperm, NamesWithCondtions: socket},
		},
	}
}

// restrictSyscalls installs, on every thread of this process (SECCOMP_FILTER_FLAG_TSYNC), a
// seccomp filter in the spirit of Docker's default profile, after setting no_new_privs: every
// process started afterwards inherits it. The agent calls it once its own mounts are done:
// from then on it cannot mount either.
//
// A system call of another ABI than the binary's (i386 through int 0x80 on amd64, AArch32 on
// arm64) kills its process: the deny list names the native ABI's numbers, and Docker's
// filters of those ABIs are not worth their length for a sandbox that runs none of their
// programs. (go-seccomp-bpf would let them all through; it already answers x32 calls on
// amd64 with ENOSYS.)
func restrictSyscalls() error {
	native, err := arch.GetInfo("")
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	policy := sandboxPolicy(native)
	body, err := policy.Assemble()
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionKillProcess)},
	}
	raw, err := bpf.Assemble(append(guard, body...))
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog := &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}

	// no_new_privs and the filter are set from one thread, which TSYNC copies both to. Should
	// that fail, the thread may be left with no_new_privs alone: it is never unlocked, and
	// ends with this goroutine.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := loadFilter(prog)
		if err == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// loadFilter sets no_new_privs on the calling thread and installs prog on every thread of the
// process. The kernel installs it on all of them atomically, including threads being created
// meanwhile, and copies no_new_privs along.
func loadFilter(prog *unix.SockFprog) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: install filter: %w", errno)
	}
	if tid != 0 {
		// With TSYNC, success is 0; a thread id names a thread that already has a filter of
		// its own, and nothing was installed.
		return fmt.Errorf("seccomp: thread %d cannot take the filter", tid)
	}
	return nil
}
