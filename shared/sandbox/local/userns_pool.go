package local

import (
	"fmt"
	"io"
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
// a sandbox starts the slow way, and the pool fills again in the background.
type usernsPool struct {
	bash, nsenter string
	size          int

	joined atomic.Int64 // sandboxes started in a namespace of the pool

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
func newUsernsPool(bash string, size int) *usernsPool {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil || size <= 0 {
		return nil
	}
	p := &usernsPool{bash: bash, nsenter: nsenter, size: size}
	p.fill()
	return p
}

// hold makes one namespace with the sandboxes' map, root inside allowed setgroups as in the
// namespace Go would make for the sandbox itself. The holder dies with the server.
func (p *usernsPool) hold() (*heldUserns, error) {
	cmd := exec.Command(p.bash, "-c", "read -r _")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: sandboxIDMap, GidMappings: sandboxIDMap,
		GidMappingsEnableSetgroups: true, Pdeathsig: syscall.SIGKILL, Setsid: true}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("a user namespace: %w", err)
	}
	return &heldUserns{cmd: cmd, stdin: stdin}, nil
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

// enter makes cmd start in a namespace of the pool, as its root, on the quick path, and returns
// the release of the namespace's holder, to call once the sandbox's process has joined it (its
// agent answers); false when none is ready (inUserNamespace then).
func (p *usernsPool) enter(cmd *exec.Cmd) (release func(), ok bool) {
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	if len(p.ready) == 0 {
		p.mu.Unlock()
		p.fill()
		return nil, false
	}
	h := p.ready[0]
	p.ready = p.ready[1:]
	p.mu.Unlock()
	p.fill()
	p.joined.Add(1)
	// nsenter joins the namespace and becomes its root (uid and gid 0, no supplementary groups),
	// then runs the command as it was.
	cmd.Args = append([]string{p.nsenter, "--user=" + h.path(), "--"}, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	cmd.Path = p.nsenter
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
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
	r.namespacesOnce.Do(func() { r.namespaces = newUsernsPool(r.bash, poolSize) })
	if release, ok := r.namespaces.enter(cmd); ok {
		return release
	}
	inUserNamespace(cmd)
	return func() {}
}
