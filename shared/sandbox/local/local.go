// Package local is the embedded default's sandbox runtime: one directory per session, unpacked
// from the sample's environment archive, with `codeset sandboxd` running in it as a child
// process, in its own mount, pid and network namespaces where the kernel allows it, reached over
// a unix socket.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/image"
)

// Isolation modes.
const (
	Namespaces = "namespaces" // unshare: own mount, pid and network namespaces
	Process    = "process"    // a plain process tree in its own session
	Auto       = "auto"       // namespaces when they work here, else process
)

// Options configure the runtime.
type Options struct {
	// DataDir is the root of the embedded default's data: sandboxes live in
	// <DataDir>/sandboxes/<session id>/ and relative archive paths resolve against it.
	DataDir string
	// Binary is the codeset binary that runs `sandboxd`; empty means this process's own.
	Binary string
	// Isolation is Auto (the default), Namespaces or Process.
	Isolation string
	// StartTimeout bounds how long Start waits for the agent to answer (default 30 s).
	StartTimeout time.Duration
	// Share are the host directories sandboxes see, read-only (namespaces only); nil means
	// DefaultShare.
	Share []string
	// BaseImage, when set, is the root file system of sandboxes whose sample has an archive
	// instead of the shared host directories: an image reference as a sample's (namespaces and
	// overlays only).
	BaseImage string
	// Limits bound what each sandbox may use of the machine; the zero value is no limit.
	Limits Limits
	// Ephemeral sandboxes die with the process that started them: for tests, whose sandboxes
	// must not outlive a killed test binary. Never for `codeset serve`, whose sandboxes
	// survive its restarts to be reattached.
	Ephemeral bool
}

// OrphanGrace is how long past its session's expires_at a sandbox ends by itself. The server
// stops it at expiry (or at its next start, if it was down then): one still running this long
// after was left behind by a server that is gone for good, stopped and never restarted, or its
// data dir deleted.
const OrphanGrace = 10 * time.Minute

// Runtime runs sandboxes as local processes.
type Runtime struct {
	dataDir      string
	binary       string
	unshare      string
	bash         string
	mode         string
	why          string            // why namespaces are off, when they are
	overlay      bool              // work trees are overlays on a shared unpacked archive (namespaces only)
	userns       bool              // sandboxes run in a user namespace, root inside unprivileged outside (namespaces only)
	noUserns     string            // why they do not, when they do not (namespaces only)
	share        []string          // host directories a sandbox sees (namespaces only)
	baseImage    string            // the root of archive samples' sandboxes, when not the shares
	caches       map[string]string // inside path -> host cache, read-only lower layers (namespaces only)
	startTimeout time.Duration
	ephemeral    bool
	limits       Limits
	groups       *controlGroups // each sandbox's control group, when the limits need one and it works here
	noGroups     string         // why the limits that need a control group are off, when they are

	imagesOnce sync.Once
	images     *image.Store // the images of the samples that have one, unpacked once per layer
	imagesErr  error

	clients sync.Map      // URL -> *sandbox.AgentClient, so connections are kept alive between calls
	oracles sandbox.Turns // one oracle per session at a time
	// verifications are the oracle runs under way, by id: processes of this server, which
	// end with it like its sandboxes' agents.
	verifications sandbox.OracleRuns
	mu            sync.Mutex
	waited        map[int]chan struct{} // agents started by this process: closed once reaped
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New checks the options and decides, once, which isolation this machine allows.
func New(opts Options) (*Runtime, error) {
	if opts.DataDir == "" {
		return nil, errors.New("local sandboxes: no data dir")
	}
	data, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	r := &Runtime{dataDir: data, binary: opts.Binary, startTimeout: opts.StartTimeout, ephemeral: opts.Ephemeral,
		waited: map[int]chan struct{}{}, share: DefaultShare, caches: hostCaches()}
	if opts.Share != nil {
		r.share = opts.Share
	}
	r.baseImage = opts.BaseImage
	for _, d := range r.share {
		if !filepath.IsAbs(d) || strings.ContainsAny(d, ",") || r.sharesData(d) {
			return nil, fmt.Errorf("local sandboxes: shared directory %q must be absolute, without commas, and not hold the data dir", d)
		}
	}
	if r.binary == "" {
		if r.binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("local sandboxes: find own binary: %w", err)
		}
	}
	if r.startTimeout <= 0 {
		r.startTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(filepath.Join(data, "sandboxes"), 0o700); err != nil {
		return nil, fmt.Errorf("local sandboxes: %w", err)
	}
	switch opts.Isolation {
	case "", Auto:
		r.mode = Process
		if r.unshare, err = namespacesWork(); err == nil {
			r.mode = Namespaces
		} else {
			r.why = err.Error()
		}
	case Namespaces:
		if r.unshare, err = namespacesWork(); err != nil {
			return nil, fmt.Errorf("local sandboxes: namespaces asked for but unavailable: %w", err)
		}
		r.mode = Namespaces
	case Process:
		r.mode, r.why = Process, "process isolation chosen in the configuration"
	default:
		return nil, fmt.Errorf("local sandboxes: unknown isolation %q (want auto, namespaces or process)", opts.Isolation)
	}
	if r.mode == Namespaces {
		if r.bash, err = exec.LookPath("bash"); err != nil {
			return nil, fmt.Errorf("local sandboxes: bash is required: %w", err)
		}
	}
	if r.mode == Namespaces {
		if err := usernsWorks(filepath.Join(data, "sandboxes")); err != nil {
			r.noUserns = err.Error()
		} else {
			r.userns = true
		}
		if !strings.ContainsAny(r.envsDir(), ",:") {
			r.overlay = r.overlayWorks(r.envsDir()) == nil
		}
	}
	r.setUpLimits(opts.Limits)
	return r, nil
}

// unshareArgs give each sandbox its own mount, pid and network namespaces. --kill-child ties
// the namespace's life to the unshare process the runtime tracks; --mount-proc makes /proc show
// only the sandbox's processes.
var unshareArgs = []string{"--mount", "--pid", "--net", "--fork", "--kill-child", "--mount-proc"}

// namespacesWork tries the namespaces with a command that does nothing, once per process: the
// answer is the machine's, and every App of a test run would otherwise pay for it again.
var namespacesWork = sync.OnceValues(tryNamespaces)

func tryNamespaces() (string, error) {
	bin, err := exec.LookPath("unshare")
	if err != nil {
		return "", errors.New("util-linux unshare is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(unshareArgs, "--", "true")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("unshare fails here: %v: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// overlayWorks makes a throwaway overlay as the runtime makes a sandbox's, with its layers in
// dir (the upper layer must live on the sandboxes' file system).
func (r *Runtime) overlayWorks(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"lower", "upper", "work"} {
		os.Mkdir(filepath.Join(tmp, d), 0o755)
	}
	fd, err := overlayMount([]string{filepath.Join(tmp, "lower")}, filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), r.idmap())
	if err != nil {
		return fmt.Errorf("overlay mounts fail here: %w", err)
	}
	return syscall.Close(fd)
}

// UserNamespace reports whether sandboxes run in a user namespace of their own (root inside is
// SandboxUID outside), and when not, why.
func (r *Runtime) UserNamespace() (bool, string) { return r.userns, r.noUserns }

// idmap is the user namespace whose map the runtime's mounts for sandboxes take, or -1 when
// sandboxes run without one.
func (r *Runtime) idmap() int {
	if !r.userns {
		return -1
	}
	ns, _ := idmapNamespace()
	return ns
}

// Mode is the isolation in use: Namespaces or Process.
func (r *Runtime) Mode() string { return r.mode }

// Describe says, for the start-up log of `codeset serve`, how sandboxes are isolated.
func (r *Runtime) Describe() string {
	if r.mode == Namespaces {
		how := "unpacked per sandbox"
		if r.overlay {
			how = "work trees as overlays on a shared unpacked archive"
		}
		if r.baseImage != "" {
			how += ", on the base image " + r.baseImage
		}
		user := fmt.Sprintf("in a user namespace (root inside is uid %d outside)", SandboxUID)
		if !r.userns {
			user = "as the host's root, with no user namespace (" + r.noUserns + ")"
		}
		return "local sandboxes, each in its own mount, pid and network namespaces (unshare) " + user + ", with a root file system of its own (the host's " + strings.Join(r.share, ", ") + " read-only, a minimal /etc, private /tmp, /dev and home, no admin capabilities, a seccomp filter, no host path), " + how + ", reached over a unix socket"
	}
	return "local sandboxes as plain processes (no namespace isolation: " + r.why + "), reached over a unix socket"
}

// imageStore is where sample images are pulled and unpacked, under the data dir, which sandboxes
// never see.
func (r *Runtime) imageStore() (*image.Store, error) {
	r.imagesOnce.Do(func() {
		r.images, r.imagesErr = image.NewStore(filepath.Join(r.dataDir, "sandboxes", ".images"), image.Options{})
	})
	return r.images, r.imagesErr
}

// sharesData reports whether sharing d would show sandboxes the data dir.
func (r *Runtime) sharesData(d string) bool {
	d = filepath.Clean(d)
	return d == "/" || r.dataDir == d || strings.HasPrefix(r.dataDir, d+"/")
}

// sessionName is what a session id must look like to name a directory.
var sessionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (r *Runtime) dir(name string) (string, error) {
	if !sessionName.MatchString(name) {
		return "", fmt.Errorf("local sandboxes: %q is not a session id", name)
	}
	return filepath.Join(r.dataDir, "sandboxes", name), nil
}

// socketPath is the agent's socket: in the sandbox's directory unless that path is too long for
// a unix socket address (108 bytes), then in the temp dir under a name derived from it.
func socketPath(dir string) string {
	p := filepath.Join(dir, "agent.sock")
	if len(p) < 100 {
		return p
	}
	sum := hexHash(dir)
	return filepath.Join(os.TempDir(), "codeset-sandbox-"+sum+".sock")
}

// Start unpacks the sample's environment into the session's directory, starts the agent there
// and returns once it answers. A sandbox left over from an earlier Start of the same session (a
// redelivered request) is ended first.
func (r *Runtime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	dir, err := r.dir(spec.SessionID)
	if err != nil {
		return sandbox.Info{}, err
	}
	if _, err := os.Stat(dir); err == nil {
		if err := r.Stop(ctx, sandbox.Info{Name: spec.SessionID}); err != nil {
			return sandbox.Info{}, fmt.Errorf("end the earlier sandbox of %s: %w", spec.SessionID, err)
		}
	}
	spec, err = r.withArchiveFile(ctx, spec)
	if err != nil {
		return sandbox.Info{}, fmt.Errorf("start sandbox %s: %w", spec.SessionID, err)
	}
	info, err := r.start(ctx, spec, dir)
	if err != nil {
		r.Stop(context.WithoutCancel(ctx), info)
		return sandbox.Info{}, fmt.Errorf("start sandbox %s: %w", spec.SessionID, err)
	}
	return info, nil
}

func (r *Runtime) start(ctx context.Context, spec sandbox.Spec, dir string) (sandbox.Info, error) {
	info := sandbox.Info{Name: spec.SessionID, Location: "local", URL: "unix://" + socketPath(dir)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, err
	}
	// What the sandbox gets from the host, as descriptors (namespaces only).
	var pass passed
	defer pass.close()
	tree, err := r.prepareTree(ctx, dir, spec.Env, &pass)
	if err != nil {
		return info, err
	}
	info.WorkDir = tree.WorkDir

	info.Secret = sandbox.SecretOf(spec)
	logFile, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return info, err
	}
	defer logFile.Close()

	group, err := r.newGroup("sandbox", dir)
	if err != nil {
		return info, err
	}
	agentArgs := []string{"--work-dir", info.WorkDir}
	if !spec.ExpiresAt.IsZero() {
		agentArgs = append(agentArgs, "--stop-at", strconv.FormatInt(spec.ExpiresAt.Add(OrphanGrace).Unix(), 10))
	}
	var argv []string
	if r.mode == Namespaces {
		// The socket and the secret as descriptors: the sandbox's root may not create or read a
		// file of the host, and the secret is never on the disk.
		ln, err := pass.listener(socketPath(dir))
		if err != nil {
			return info, err
		}
		sf, err := pass.data("sandbox-secret", []byte(info.Secret))
		if err != nil {
			return info, err
		}
		agentArgs = append(append(append(agentArgs, "--listen", ln, "--secret-file", sf), r.limitArgs(group, dir, &pass)...), tree.Flags...)
		if argv, err = r.namespacesArgv(&pass, "sandbox-init", agentArgs); err != nil {
			return info, err
		}
	} else {
		secretFile := filepath.Join(dir, "secret")
		if err := os.WriteFile(secretFile, []byte(info.Secret), 0o600); err != nil {
			return info, err
		}
		agentArgs = append(agentArgs, "--listen", info.URL, "--secret-file", secretFile)
		// A subreaper init keeps every descendant in the tree that Stop kills.
		argv = append(append(append([]string{r.binary, "sandboxd"}, agentArgs...), r.limitArgs(group, dir, &pass)...), "--init")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = pass.files
	cmd.Dir = dir // the work tree itself may not exist before the init mounts it
	cmd.Env = tree.Env
	if cmd.Env == nil {
		cmd.Env = r.sandboxEnv()
	}
	cmd.Env = append(cmd.Env, Mark(dir))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A session of its own: out of the terminal's process group (a Ctrl-C to `codeset serve`
	// does not reach it) and not tied to this process's life, so it survives a restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if r.ephemeral {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if r.userns {
		inUserNamespace(cmd)
	}
	if err := r.startIn(group, cmd); err != nil {
		return info, fmt.Errorf("start agent: %w", err)
	}
	info.PID = cmd.Process.Pid
	done := make(chan struct{})
	r.mu.Lock()
	r.waited[info.PID] = done
	r.mu.Unlock()
	go func() {
		cmd.Wait()
		close(done)
	}()
	if err := os.WriteFile(filepath.Join(dir, "agent.pid"), []byte(strconv.Itoa(info.PID)), 0o600); err != nil {
		return info, err
	}

	client, err := r.client(info)
	if err != nil {
		return info, err
	}
	deadline := time.Now().Add(r.startTimeout)
	for wait := time.Millisecond; ; wait = min(wait+time.Millisecond, 5*time.Millisecond) {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.Health(hctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			return info, fmt.Errorf("agent exited at start: %s", tail(filepath.Join(dir, "agent.log")))
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(wait):
		}
		if time.Now().After(deadline) {
			return info, fmt.Errorf("agent did not answer within %s: %v", r.startTimeout, err)
		}
	}
	info.CreatedAt = time.Now().UTC()
	return info, nil
}

// sandboxEnv is what the agent and its commands inherit: with a root of their own, the
// sandbox's (insideEnv); as plain processes, enough to find and run the toolchains of the host.
// Never the server's own settings and secrets.
func (r *Runtime) sandboxEnv() []string {
	if r.mode == Namespaces {
		return r.insideEnv()
	}
	keep := []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
		"GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN",
		"PYENV_ROOT", "PYENV_VERSION", "JAVA_HOME"}
	env := []string{"CODESET_SANDBOX=1"}
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Stop ends every process of the sandbox and removes its directory. A sandbox already gone is
// not an error.
func (r *Runtime) Stop(ctx context.Context, info sandbox.Info) error {
	dir, err := r.dir(info.Name)
	if err != nil {
		return err
	}
	pid := info.PID
	if pid == 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "agent.pid")); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	sock := socketPath(dir)
	if pid > 0 && r.owns(pid, dir) {
		if err := r.killTree(ctx, pid); err != nil {
			return fmt.Errorf("stop sandbox %s: %w", info.Name, err)
		}
	}
	// Anything that escaped the tree (its parent was killed by hand) still works in the directory.
	killStragglers(dir)
	if err := r.removeGroup("sandbox", dir); err != nil {
		return fmt.Errorf("stop sandbox %s: %w", info.Name, err)
	}
	if c, ok := r.clients.LoadAndDelete("unix://" + sock); ok {
		c.(*sandbox.AgentClient).Close()
	}
	os.Remove(sock)
	r.oracles.Forget(info.Name)
	// An oracle's directory outlives it only when the server died under it.
	if left, _ := filepath.Glob(filepath.Join(r.oraclesDir(), info.Name+"-*")); len(left) > 0 {
		for _, d := range left {
			r.removeGroup("oracle", d)
			os.RemoveAll(d)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("stop sandbox %s: remove %s: %w", info.Name, dir, err)
	}
	return nil
}

// owns reports whether pid is the first process of the sandbox in dir: after a reboot
// the pid may belong to something else entirely. Its environment holds the sandbox's key (its
// command line no longer names the socket: see passed).
func (r *Runtime) owns(pid int, dir string) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil &&
		bytes.Contains(b, []byte("\x00"+Mark(dir)+"\x00")) {
		return true
	}
	sock := socketPath(dir)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("unix://"+sock+"\x00"))
}

// keyEnv names a sandbox's key in the environment of its processes: a hash of its directory,
// by which the runtime knows its processes again, and which says nothing of the host.
const keyEnv = "CODESET_SANDBOX_KEY"

// Mark is the variable in the environment of every process of the sandbox (or oracle) in dir.
func Mark(dir string) string { return keyEnv + "=" + hexHash(filepath.Clean(dir)) }

// namespacesArgv is the command line of a sandbox in namespaces: unshare, then bash as the
// namespace's first process, which starts the agent (the codeset binary, passed as a
// descriptor, with its arguments passed in memory) and closes every passed descriptor. bash
// reaps every orphan adopted by pid 1 (its SIGCHLD handler waits for any child), starts in a
// couple of milliseconds where a second Go process would take fifteen, and when the agent exits
// it exits, which ends the namespace and everything in it.
func (r *Runtime) namespacesArgv(pass *passed, name string, agentArgs []string) ([]string, error) {
	prog, err := pass.file(r.binary)
	if err != nil {
		return nil, fmt.Errorf("the codeset binary: %w", err)
	}
	argsFlag, err := pass.args(agentArgs)
	if err != nil {
		return nil, err
	}
	script := `"$@" & p=$!; ` + pass.closing() + `wait "$p"`
	argv := append(append([]string{r.unshare}, unshareArgs...), "--", r.bash, "-c", script, name, prog, "sandboxd")
	return append(argv, argsFlag...), nil
}

// killTree ends pid and every descendant. The tree is frozen first (SIGSTOP: a stopped process
// cannot fork, nor exit and let its children escape to another parent), scanned again until no
// new process appears, then killed at once. In a pid namespace the kernel also kills everything
// in it once its first process dies.
func (r *Runtime) killTree(ctx context.Context, pid int) error {
	seen := map[int]bool{}
	for range 50 {
		tree := descendants(pid)
		grew := false
		for _, p := range tree {
			if !seen[p] {
				seen[p], grew = true, true
				syscall.Kill(p, syscall.SIGSTOP)
			}
		}
		if !grew {
			break
		}
	}
	for p := range seen {
		syscall.Kill(p, syscall.SIGKILL)
	}
	r.mu.Lock()
	done := r.waited[pid]
	delete(r.waited, pid)
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if done != nil {
			select {
			case <-done:
				done = nil
			default:
			}
		}
		if done == nil && !anyRunning(seen) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox processes still running 10 s after SIGKILL")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Alive reports whether the sandbox's agent still runs and answers.
func (r *Runtime) Alive(ctx context.Context, info sandbox.Info) bool {
	dir, err := r.dir(info.Name)
	if err != nil || info.PID <= 0 || !running(info.PID) || !r.owns(info.PID, dir) {
		return false
	}
	c, err := r.client(info)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = c.Health(ctx)
	return err == nil
}

// Client talks to the sandbox's agent over its socket, on kept-alive connections.
func (r *Runtime) Client(info sandbox.Info) sandbox.Client {
	c, err := r.client(info)
	if err != nil {
		return sandbox.Unreachable(err)
	}
	return c
}

func (r *Runtime) client(info sandbox.Info) (*sandbox.AgentClient, error) {
	if c, ok := r.clients.Load(info.URL); ok {
		if ac := c.(*sandbox.AgentClient); ac.Secret() == info.Secret {
			return ac, nil
		}
	}
	c, err := sandbox.NewClient(info, nil)
	if err != nil {
		return nil, err
	}
	r.clients.Store(info.URL, c)
	return c, nil
}

// tail is the end of the agent's log, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return string(b)
}
