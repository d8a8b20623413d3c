package local

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
)

// Go starts a process in a new user namespace by forking the whole server, not by the vfork it
// uses otherwise (the child must wait, stopped, for its parent to write its id maps): a few
// milliseconds of every sandbox's start, growing with the server's memory. So the runtime makes
// a few user namespaces ahead of time, each held by a process started only to make it, and a
// sandbox's first process joins one (nsenter, as root of that namespace) on the quick path. Each
// namespace serves one sandbox (namespaces are never shared between sandboxes); with none ready,
// one is made for the sandbox there and then (still without forking the server), and the pool
// fills again in the background.
type usernsPool struct {
	bash, unshare, nsenter string
	size                   int

	joined atomic.Int64 // sandboxes started in a namespace of the pool
	ahead  atomic.Int64 // of which in one made ahead

	mu      sync.Mutex
	ready   []*heldUserns
	filling bool
	closed  bool
}

// heldUserns is one user namespace made ahead, and the process that holds it.
type heldUserns struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

// path is the namespace as a file nsenter opens.
func (h *heldUserns) path() string { return fmt.Sprintf("/proc/%d/ns/user", h.cmd.Process.Pid) }

// release ends the holder: the namespace lives on as long as a process of the sandbox is in it.
func (h *heldUserns) release() {
	h.stdin.Close()
	h.cmd.Wait()
}

// newUsernsPool keeps size namespaces ready; nil when nsenter is missing (sandboxes then start
// the slow way).
func newUsernsPool(bash, unshare string, size int) *usernsPool {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil || size <= 0 {
		return nil
	}
	p := &usernsPool{bash: bash, unshare: unshare, nsenter: nsenter, size: size}
	p.fill()
	return p
}

// hold makes one namespace with the sandboxes' map. Not by Go's clone with CLONE_NEWUSER, which
// would fork the whole server again (and stall its page faults while it copies its page
// tables): `unshare --user` starts on the quick path and makes the namespace itself, and once
// its bash says so the runtime, root outside, writes the namespace's id maps. The holder dies
// with the server.
func (p *usernsPool) hold() (*heldUserns, error) {
	cmd := exec.Command(p.unshare, "--user", "--", p.bash, "-c", "echo; read -r _")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("a user namespace: %w", err)
	}
	h := &heldUserns{cmd: cmd, stdin: stdin}
	// Its bash speaks once it runs in the new namespace.
	if _, err := stdout.Read(make([]byte, 1)); err != nil {
		h.release()
		return nil, fmt.Errorf("a user namespace: its holder did not start: %w", err)
	}
	m := fmt.Sprintf("%d %d %d\n", sandboxIDMap[0].ContainerID, sandboxIDMap[0].HostID, sandboxIDMap[0].Size)
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", cmd.Process.Pid, f), []byte(m), 0); err != nil {
			h.release()
			return nil, fmt.Errorf("a user namespace: its %s: %w", f, err)
		}
	}
	return h, nil
}

// fill makes namespaces in the background until size are ready.
func (p *usernsPool) fill() {
	p.mu.Lock()
	if p.filling || p.closed || len(p.ready) >= p.size {
		p.mu.Unlock()
		return
	}
	p.filling = true
	p.mu.Unlock()
	go func() {
		for {
			h, err := p.hold()
			p.mu.Lock()
			if err != nil || p.closed || len(p.ready) >= p.size {
				p.filling = false
				closed := p.closed
				p.mu.Unlock()
				if h != nil && (closed || err == nil) {
					h.release()
				}
				return
			}
			p.ready = append(p.ready, h)
			p.mu.Unlock()
		}
	}()
}

// enter makes cmd start in a namespace of the pool, as its root (one made now when none is
// ready), and returns the release of the namespace's holder, to call once the sandbox's process
// has joined it (its agent answers); false when no namespace could be made this way.
func (p *usernsPool) enter(cmd *exec.Cmd) (release func(), ok bool) {
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	var h *heldUserns
	if len(p.ready) > 0 {
		h = p.ready[0]
		p.ready = p.ready[1:]
		p.ahead.Add(1)
	}
	p.mu.Unlock()
	p.fill()
	if h == nil {
		var err error
		if h, err = p.hold(); err != nil {
			return nil, false
		}
	}
	p.joined.Add(1)
	// nsenter joins the namespace and becomes its root (uid and gid 0, no supplementary groups),
	// then runs the command as it was.
	cmd.Args = append([]string{p.nsenter, "--user=" + h.path(), "--"}, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	cmd.Path = p.nsenter
	// The host directory the runtime starts it in is not the sandbox's to enter.
	cmd.Dir = "/"
	return h.release, true
}

// close ends the holders of the namespaces still ready.
func (p *usernsPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	ready := p.ready
	p.ready = nil
	p.mu.Unlock()
	for _, h := range ready {
		h.release()
	}
}

// poolSize is how many user namespaces a runtime keeps ready: sandboxes start one at a time
// mostly, and a burst past it starts the slow way while the pool fills again.
const poolSize = 2

// enterUserNamespace makes cmd start in a user namespace of its own with the sandboxes' map, as
// root there: one made ahead when the pool has one, else a new one. The release it returns is
// for once the process has joined it (a no-op for a new one).
func (r *Runtime) enterUserNamespace(cmd *exec.Cmd) (release func()) {
	r.namespacesOnce.Do(func() { r.namespaces = newUsernsPool(r.bash, r.unshare, poolSize) })
	if release, ok := r.namespaces.enter(cmd); ok {
		return release
	}
	inUserNamespace(cmd)
	return func() {}
}
