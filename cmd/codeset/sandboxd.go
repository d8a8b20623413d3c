package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/agent"
	"github.com/codeset/codeset/shared/sandbox/envarchive"
)

// sandboxd is the agent inside a sandbox: exec, str_replace, upload and verify over HTTP, for
// whoever holds the session's secret.
func sandboxd(args []string) error {
	// A sandbox's runtime passes the arguments on a descriptor: every process in the sandbox can
	// read the agent's command line, and the arguments name the host's paths.
	if len(args) == 2 && args[0] == "--args-fd" {
		var err error
		if args, err = argsFrom(args[1]); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("sandboxd", flag.ContinueOnError)
	listen := fs.String("listen", "", "unix:///path/to.sock, or a TCP address (default :$PORT, as on Cloud Run)")
	workDir := fs.String("work-dir", os.Getenv("CODESET_SANDBOX_WORK_DIR"), "the repository commands run in (env CODESET_SANDBOX_WORK_DIR; default the current directory)")
	secretFile := fs.String("secret-file", "", "read the secret from this file and remove it (otherwise env "+sandbox.SecretEnv+")")
	grace := fs.Duration("grace", time.Second, "time a timed-out command's processes get between SIGTERM and SIGKILL")
	asInit := fs.Bool("init", false, "run as the sandbox's first process: start the agent as a child and reap orphans")
	loopback := fs.Bool("loopback", false, "bring up lo (a fresh network namespace has it down)")
	rootDir := fs.String("root", "", "give the sandbox a root file system of its own, mounted on this directory of its mount namespace (namespaces only): --share, --tree, --cache, --home")
	share := fs.String("share", "", "with --root: comma-separated host directories mounted read-only at the same path, each path or path=/proc/self/fd/N (a mount the runtime passed)")
	tree := fs.String("tree", "", "with --root: where the work tree sits inside")
	rootImage := fs.String("root-image", "", "with --root: a sample image's overlay (/proc/self/fd/N, a mount the runtime passed) as the whole root")
	treeFrom := fs.String("tree-from", "", "with --root: the work tree attached at --tree: a mount the runtime passed (/proc/self/fd/N) or a host directory")
	home := fs.String("home", "/home/user", "with --root: the sandbox's empty home directory")
	tmpSize := fs.String("tmp-size", "", "with --root: size of the sandbox's /tmp and home (a tmpfs size, e.g. 1g)")
	caches := cacheFlag{}
	fs.Var(caches, "cache", "with --root: inside=host, a host directory as the read-only lower layer of a private overlay inside (repeatable)")
	oracle := fs.Bool("oracle", false, "serve as an oracle: the work tree is a fresh pristine copy, verification is allowed, and every process the verifier leaves is killed")
	trackChanges := fs.Bool("track-changes", false, "take a manifest of the work tree at start and answer GET /v1/changes from it (a sandbox with no pristine copy beside it: Cloud Run)")
	oracleRequest := fs.String("oracle-request", "", "run the oracle once instead of serving: the sandbox.VerifyRequest in this JSON file, the answer on stdout")
	oracleChanges := fs.String("oracle-changes", "", "with --oracle-request: the agent's changes, a layer (tar)")
	archiveURL := fs.String("archive-url", os.Getenv(sandbox.ArchiveURLEnv), "the environment archive (tar.gz) to unpack at --work-dir before serving: a URL (env "+sandbox.ArchiveURLEnv+"; Cloud Run's base image)")
	archiveDigest := fs.String("archive-digest", os.Getenv(sandbox.ArchiveDigestEnv), "with --archive-url: the sha256:<hex> digest its bytes must have (env "+sandbox.ArchiveDigestEnv+")")
	archiveSize := fs.Int64("archive-size", envInt64(sandbox.ArchiveSizeEnv), "with --archive-url: the size in bytes it must have (env "+sandbox.ArchiveSizeEnv+")")
	stopAt := fs.Int64("stop-at", 0, "unix time at which the sandbox ends, whatever happens: one its server never came back to stop does not run for ever (0: never)")
	var limits agent.Limits
	fs.StringVar(&limits.Cgroup, "cgroup", "", "the control group the runtime started the sandbox in (its name): the agent checks that it is there and says which of its limits a command hit")
	fs.Int64Var(&limits.Memory, "memory-limit", 0, "with --cgroup: the group's memory limit in bytes, as the messages say it")
	fs.Int64Var(&limits.Pids, "pids-limit", 0, "with --cgroup: the process limit of the group's commands: each command is moved to the group's group \"commands\" before it runs")
	fs.Uint64Var(&limits.OpenFiles, "open-files", 0, "RLIMIT_NOFILE, soft and hard, of the agent and its commands (0: inherited)")
	fs.Int64Var(&limits.Disk, "disk-limit", 0, "bytes the work tree's changes may take in --disk-dir: a command that grows them past it is killed (0: no limit)")
	fs.StringVar(&limits.DiskDir, "disk-dir", "", "with --disk-limit: the host directory the work tree's changes are written to (its overlay's upper layer)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	setup := agent.InitOptions{Loopback: *loopback}
	if *rootDir != "" {
		setup.Root = &agent.RootOptions{Dir: *rootDir, Image: *rootImage, Tree: *tree, TreeFrom: *treeFrom, Caches: caches,
			Home: *home, TmpSize: *tmpSize}
		if *share != "" {
			setup.Root.Share = strings.Split(*share, ",")
		}
	}
	if *asInit {
		// On Cloud Run this is the container's first process and the secret is in its
		// environment: /proc/1/environ is for no command (see the agent's own below).
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("sandboxd: not dumpable: %w", err)
		}
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own binary: %w", err)
		}
		child := []string{self, "sandboxd", "--listen", *listen, "--work-dir", *workDir, "--grace", grace.String(),
			"--stop-at", strconv.FormatInt(*stopAt, 10)}
		if *secretFile != "" {
			child = append(child, "--secret-file", *secretFile)
		}
		if *oracle {
			child = append(child, "--oracle")
		}
		if *trackChanges {
			child = append(child, "--track-changes")
		}
		child = append(child, limitArgs(limits)...)
		// The archive's URL goes to the agent in its environment, not on its command line,
		// which any command may read; the agent removes it once read.
		os.Setenv(sandbox.ArchiveURLEnv, *archiveURL)
		os.Setenv(sandbox.ArchiveDigestEnv, *archiveDigest)
		os.Setenv(sandbox.ArchiveSizeEnv, strconv.FormatInt(*archiveSize, 10))
		os.Exit(agent.RunInit(child, setup))
	}

	if *oracleRequest != "" {
		return oracleOnce(*oracleRequest, *oracleChanges, *workDir, *grace, setup, limits)
	}
	// No command of the sandbox may read this process's memory or environment (the secret),
	// though in a user namespace they run as the same user: only a tracer with CAP_SYS_PTRACE
	// could, which commands do not have.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandboxd: not dumpable: %w", err)
	}
	secret := os.Getenv(sandbox.SecretEnv)
	if *secretFile != "" {
		b, err := readPassed(*secretFile)
		if err != nil {
			return fmt.Errorf("read secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	os.Unsetenv(sandbox.SecretEnv)
	for _, k := range []string{sandbox.ArchiveURLEnv, sandbox.ArchiveDigestEnv, sandbox.ArchiveSizeEnv} {
		os.Unsetenv(k)
	}
	if *archiveURL != "" {
		// Before listening: the container's startup probe passes only once the tree is there.
		if err := fetchArchive(*archiveURL, blob.Ref{Digest: *archiveDigest, Size: *archiveSize}, *workDir); err != nil {
			return err
		}
	}
	if *workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		*workDir = wd
	}
	// Listen before the set-up: a socket in /tmp must be bound in the host's /tmp, not in the
	// sandbox's private one.
	ln, err := listenOn(*listen)
	if err != nil {
		return err
	}
	// What the limits need is opened before the set-up hides the host's /sys and directories.
	watch, err := agent.OpenLimits(limits)
	if err != nil {
		ln.Close()
		return err
	}
	// Without --init another program is the sandbox's first process (bash, in a pid namespace):
	// the agent prepares the namespaces itself.
	if err := agent.Setup(setup); err != nil {
		ln.Close()
		return err
	}
	srv, err := agent.New(agent.Options{WorkDir: *workDir, Secret: secret, Grace: *grace, Oracle: *oracle, TrackChanges: *trackChanges,
		Limits: watch})
	if err != nil {
		ln.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "sandboxd: serving %s on %s\n", *workDir, ln.Addr())
	var deadline <-chan time.Time
	if *stopAt > 0 {
		t := time.NewTimer(time.Until(time.Unix(*stopAt, 0)))
		defer t.Stop()
		deadline = t.C
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	case <-deadline:
		// The session ended long ago and nobody stopped its sandbox (its server is gone, or its
		// data dir was deleted): end it. Its first process takes every command down with it.
		fmt.Fprintln(os.Stderr, "sandboxd: past --stop-at and still running: exiting")
		hs.Close()
		return nil
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

// oracleOnce is a local oracle sandbox: it sets up its namespaces, reads the request and the
// agent's changes (both gone once read: the verifier has no business with them), runs the
// oracle and prints a sandbox.OracleAnswer.
func oracleOnce(requestFile, changesFile, workDir string, grace time.Duration, setup agent.InitOptions, limits agent.Limits) error {
	answer := func(a sandbox.OracleAnswer) error { return json.NewEncoder(os.Stdout).Encode(a) }
	fail := func(err error) error { return answer(sandbox.OracleAnswer{Error: err.Error()}) }
	b, err := readPassed(requestFile)
	if err != nil {
		return fail(fmt.Errorf("read the oracle's request: %w", err))
	}
	var req sandbox.VerifyRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return fail(fmt.Errorf("read the oracle's request: %w", err))
	}
	// Opened before the set-up: the file is on the host's side of the mounts.
	var layer *os.File
	if changesFile != "" {
		if layer, err = openPassed(changesFile); err != nil {
			return fail(fmt.Errorf("read the agent's changes: %w", err))
		}
		defer layer.Close()
	}
	watch, err := agent.OpenLimits(limits)
	if err != nil {
		return fail(err)
	}
	if err := agent.Setup(setup); err != nil {
		return fail(err)
	}
	srv, err := agent.New(agent.Options{WorkDir: workDir, Secret: "oracle", Grace: grace, Oracle: true, Limits: watch})
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rd io.Reader
	if layer != nil {
		rd = layer
	}
	return answer(srv.Answer(ctx, req, rd))
}

// limitArgs are the flags that hand the limits on to the agent started by --init.
func limitArgs(l agent.Limits) []string {
	var args []string
	if l.Cgroup != "" {
		args = append(args, "--cgroup", l.Cgroup, "--memory-limit", strconv.FormatInt(l.Memory, 10), "--pids-limit", strconv.FormatInt(l.Pids, 10))
	}
	if l.OpenFiles > 0 {
		args = append(args, "--open-files", strconv.FormatUint(l.OpenFiles, 10))
	}
	if l.Disk > 0 {
		args = append(args, "--disk-limit", strconv.FormatInt(l.Disk, 10), "--disk-dir", l.DiskDir)
	}
	return args
}

// argsFrom reads the JSON array of arguments on the descriptor fd, and closes it.
func argsFrom(fd string) ([]string, error) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return nil, fmt.Errorf("--args-fd %q: not a descriptor", fd)
	}
	f := os.NewFile(uintptr(n), "sandbox-args")
	defer f.Close()
	var args []string
	if err := json.NewDecoder(f).Decode(&args); err != nil {
		return nil, fmt.Errorf("--args-fd %d: %w", n, err)
	}
	return args, nil
}

// cacheFlag collects --cache inside=host pairs.
type cacheFlag map[string]string

func (c cacheFlag) String() string { return fmt.Sprint(map[string]string(c)) }

func (c cacheFlag) Set(v string) error {
	inside, host, ok := strings.Cut(v, "=")
	if !ok || inside == "" || host == "" {
		return fmt.Errorf("want inside=host, got %q", v)
	}
	c[inside] = host
	return nil
}

// openPassed opens a file the runtime passed as a descriptor (/proc/self/fd/N) as it is, without
// opening it again by name: the sandbox's root, unprivileged in a user namespace, may use what
// it was given but not open the host's files. Any other name is a path, opened and then removed
// (what the runtime hands over this way is for this process alone).
func openPassed(name string) (*os.File, error) {
	if n, ok := strings.CutPrefix(name, "/proc/self/fd/"); ok {
		if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
			return os.NewFile(uintptr(fd), name), nil
		}
	}
	f, err := os.Open(name)
	if err == nil {
		os.Remove(name)
	}
	return f, err
}

// readPassed reads a file openPassed opens, and closes it.
func readPassed(name string) ([]byte, error) {
	f, err := openPassed(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// listenOn opens "unix:///path" (replacing a stale socket file), a listening socket the runtime
// passed (/proc/self/fd/N), or a TCP address; empty means Cloud Run's $PORT on every interface.
func listenOn(addr string) (net.Listener, error) {
	if n, ok := strings.CutPrefix(addr, "/proc/self/fd/"); ok {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("--listen %s: not a descriptor", addr)
		}
		f := os.NewFile(uintptr(fd), "listener")
		defer f.Close()
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", addr, err)
		}
		return ln, nil
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", path, err)
		}
		// Only the owner (the server that started the sandbox) may connect.
		if err := os.Chmod(path, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	if addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			return nil, errors.New("no --listen and no $PORT")
		}
		addr = ":" + port
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// archiveFetchTimeout bounds the download and unpacking of an environment archive: within the
// time Cloud Run gives a container to start listening.
const archiveFetchTimeout = 4 * time.Minute

// fetchArchive puts the environment archive at url, checked against ref, at workDir.
func fetchArchive(url string, ref blob.Ref, workDir string) error {
	if workDir == "" {
		return errors.New("sandboxd: --archive-url needs --work-dir (where the work tree goes)")
	}
	if ref.Size <= 0 {
		return errors.New("sandboxd: --archive-url needs --archive-digest and --archive-size")
	}
	ctx, cancel := context.WithTimeout(context.Background(), archiveFetchTimeout)
	defer cancel()
	if err := envarchive.Fetch(ctx, nil, url, ref, workDir); err != nil {
		return fmt.Errorf("sandboxd: %w", err)
	}
	fmt.Fprintf(os.Stderr, "sandboxd: unpacked the environment archive %s at %s\n", ref.Digest, workDir)
	return nil
}

// envInt64 is the integer in the environment variable k, 0 when unset or not one.
func envInt64(k string) int64 {
	n, _ := strconv.ParseInt(os.Getenv(k), 10, 64)
	return n
}
