// Package localrunner runs agent jobs on this machine, for the embedded default: it prepares
// the repository under the data dir, runs `codeset agent-job run` on it as a sandboxed
// subprocess (the demo built in, or the agent's command), stores the result in the blob store
// and reports the outcome through an agentjob.Report callback, so nothing inside the sandbox
// needs the network or the completion secret.
//
// The sandbox, where the machine allows it (namespaces): its own pid namespace (it sees no
// process of the host and dies whole with its first process) and network namespace (loopback
// only; an agent command gets the network only with Options.Network); everywhere: a session of
// its own killed whole at the timeout, an environment with none of the server's settings or
// secrets, rlimits (CPU time, file size, open files, processes), and a work dir under the data
// dir that is removed once the job has ended. Unlike a session's sandbox it has no root file
// system of its own: the demo agent only reads the tree, and an agent command is an operator's
// configured CLI, not a user's code.
package localrunner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/worker"
	"github.com/codeset/codeset/shared/blob"
)

// Isolation modes, as the session sandboxes' (shared/sandbox/local).
const (
	Namespaces = "namespaces"
	Process    = "process"
	Auto       = "auto"
)

// Options configure the runner.
type Options struct {
	// DataDir holds each job's directory, <DataDir>/agentjobs/<job id>.
	DataDir string
	// Binary is the codeset binary that runs `agent-job run`; empty means this process's own.
	Binary string
	// Report receives every outcome (required).
	Report agentjob.Report
	// Isolation is Auto (the default), Namespaces or Process.
	Isolation string
	// Timeout bounds the agent (default worker.DefaultTimeout); preparing the repository gets
	// the same again.
	Timeout time.Duration
	// Limits bound the agent's processes (the zero value: DefaultLimits).
	Limits worker.Limits
	// Network lets agent commands reach the network (real CLIs call their model's API). The
	// demo never gets it.
	Network bool
	// PassEnv names variables of this process that agent commands get (their API keys).
	PassEnv []string
	// Log receives one line per job that ends; nil discards.
	Log *slog.Logger
}

// DefaultLimits bound an agent when the options say nothing.
var DefaultLimits = worker.Limits{CPUSeconds: 3600, FileSize: 1 << 30, OpenFiles: 4096, Procs: 1024}

// Runner runs agent jobs as local sandboxed processes.
type Runner struct {
	opts    Options
	unshare []string // the namespaces' command prefix; nil in Process mode
	why     string   // why there are no namespaces, when there are none
	jobs    sync.WaitGroup
}

var _ agentjob.Runner = (*Runner)(nil)

// New checks the options and decides, once, which isolation this machine allows.
func New(opts Options) (*Runner, error) {
	if opts.DataDir == "" || opts.Report == nil {
		return nil, errors.New("local agent jobs: a data dir and a Report are required")
	}
	data, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	opts.DataDir = data
	if opts.Binary == "" {
		if opts.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("local agent jobs: find own binary: %w", err)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = worker.DefaultTimeout
	}
	if opts.Limits == (worker.Limits{}) {
		opts.Limits = DefaultLimits
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(data, "agentjobs"), 0o700); err != nil {
		return nil, fmt.Errorf("local agent jobs: %w", err)
	}
	r := &Runner{opts: opts}
	switch opts.Isolation {
	case "", Auto:
		if r.unshare, err = namespaces(); err != nil {
			r.why = err.Error()
		}
	case Namespaces:
		if r.unshare, err = namespaces(); err != nil {
			return nil, fmt.Errorf("local agent jobs: namespaces asked for but unavailable: %w", err)
		}
	case Process:
		r.why = "process isolation chosen in the configuration"
	default:
		return nil, fmt.Errorf("local agent jobs: unknown isolation %q (want auto, namespaces or process)", opts.Isolation)
	}
	return r, nil
}

// Describe says, for the start-up log, how agent jobs are isolated.
func (r *Runner) Describe() string {
	if r.unshare != nil {
		return "local agent jobs in their own pid and network namespaces, with rlimits and a timeout of " + r.opts.Timeout.String()
	}
	return "local agent jobs as plain process groups (no namespaces: " + r.why + "), with rlimits and a timeout of " + r.opts.Timeout.String()
}

// namespaces finds the unshare prefix that works here, once per process: unprivileged users
// need a user namespace of their own to make the others.
var namespaces = sync.OnceValues(func() ([]string, error) {
	bin, err := exec.LookPath("unshare")
	if err != nil {
		return nil, errors.New("util-linux unshare is not installed")
	}
	base := []string{bin, "--pid", "--fork", "--kill-child", "--mount-proc"}
	var errs []error
	for _, prefix := range [][]string{base, append(append([]string{}, base...), "--user", "--map-root-user")} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, prefix[0], append(append(prefix[1:], "--net", "--"), "true")...).CombinedOutput()
		cancel()
		if err == nil {
			return prefix, nil
		}
		errs = append(errs, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out))))
	}
	return nil, fmt.Errorf("unshare fails here: %w", errors.Join(errs...))
})

// jobName is what a job id must look like to name a directory.
var jobName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Launch starts the job and returns at once. The job's directory is its claim: it is created
// once (mkdir is atomic), so a second Launch of the same id, from any goroutine or after a
// restart, runs nothing. A job whose server died under it is never run again; the core's
// timeout fails and refunds it.
func (r *Runner) Launch(ctx context.Context, spec agentjob.Spec) error {
	if !jobName.MatchString(spec.JobID) {
		return fmt.Errorf("local agent jobs: %q is not a job id", spec.JobID)
	}
	if spec.Blobs == nil {
		return fmt.Errorf("local agent jobs: job %s: no blob store for the result", spec.JobID)
	}
	dir := filepath.Join(r.opts.DataDir, "agentjobs", spec.JobID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // launched before: at most once
		}
		return fmt.Errorf("local agent jobs: %w", err)
	}
	r.jobs.Add(1)
	go func() {
		defer r.jobs.Done()
		r.run(context.WithoutCancel(ctx), spec, dir)
	}()
	return nil
}

// Wait returns once every job launched so far has reported (or failed to).
func (r *Runner) Wait() { r.jobs.Wait() }

func (r *Runner) run(ctx context.Context, spec agentjob.Spec, dir string) {
	ctx, cancel := context.WithTimeout(ctx, 2*r.opts.Timeout+time.Minute)
	defer cancel()
	defer r.cleanUp(dir)
	out := worker.Outcome{Outcome: agentjob.OutcomeError}
	var ref *blob.Ref
	result, err := r.execute(ctx, spec, dir)
	if err == nil {
		var stored blob.Ref
		stored, err = storeResult(ctx, spec.Blobs, result)
		if err != nil {
			err = fmt.Errorf("RESULT_NOT_STORED: %w", err)
		} else {
			out.Outcome, ref = agentjob.OutcomeCompleted, &stored
		}
	}
	if err != nil {
		out.ErrorMessage = scrub(err.Error(), spec.Source.Token)
	}
	log := r.opts.Log.With("job_id", spec.JobID, "agent_id", spec.Agent.ID, "outcome", out.Outcome)
	if err := r.report(ctx, spec, out, ref); err != nil {
		log.Error("agent job outcome not reported", "error", err, "error_message", out.ErrorMessage)
		return
	}
	log.Info("agent job ended", "error_message", out.ErrorMessage)
}

// execute prepares the repository and runs the agent on it.
func (r *Runner) execute(ctx context.Context, spec agentjob.Spec, dir string) (*agentjob.Result, error) {
	repo := filepath.Join(dir, "repo")
	if err := worker.Prepare(ctx, spec.Source, spec.Ref, spec.Blobs, "", repo); err != nil {
		return nil, fmt.Errorf("prepare the repository: %w", err)
	}
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	outcome := filepath.Join(dir, "outcome.json")
	job := worker.Job{JobID: spec.JobID, Repo: spec.Repo, Ref: spec.Ref, AgentID: spec.Agent.ID, Command: spec.Agent.Command,
		WorkDir: repo, Prepared: true, Output: outcome, Timeout: r.opts.Timeout, Limits: r.opts.Limits}
	argv := []string{r.opts.Binary, "agent-job", "run"}
	if r.unshare != nil {
		prefix := append([]string{}, r.unshare...)
		if len(spec.Agent.Command) == 0 || !r.opts.Network {
			prefix = append(prefix, "--net")
		}
		argv = append(append(prefix, "--"), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repo
	cmd.Env = append(r.env(home, tmp, len(spec.Agent.Command) > 0), job.Env()...)
	logFile, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A session of its own: out of the server's process group, and killed whole by its id.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the agent job: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	// The worker stops the agent at Timeout; this bound is for a worker that hangs itself.
	limit := time.NewTimer(r.opts.Timeout + time.Minute)
	defer limit.Stop()
	select {
	case waitErr = <-done:
	case <-limit.C:
		waitErr = fmt.Errorf("did not end within %s", r.opts.Timeout+time.Minute)
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever it left in its session
	if waitErr != nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	res, err := worker.ReadOutcome(outcome)
	if err != nil {
		return nil, fmt.Errorf("the agent job ended without an outcome (%v): %s", waitErr, tail(filepath.Join(dir, "agent.log")))
	}
	if res.Outcome != agentjob.OutcomeCompleted {
		return nil, errors.New(res.ErrorMessage)
	}
	return res.Result, nil
}

// env is what the worker starts with: enough to find the toolchains, a home and a temp dir of
// the job's own, and for agent commands the variables the operator passes. Never the server's
// own settings and secrets.
func (r *Runner) env(home, tmp string, command bool) []string {
	env := []string{"HOME=" + home, "TMPDIR=" + tmp, "CODESET_SANDBOX=1"}
	keep := []string{"PATH", "LANG", "LC_ALL", "TZ"}
	if command {
		keep = append(keep, r.opts.PassEnv...)
	}
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// storeResult puts the result JSON in the blob store.
func storeResult(ctx context.Context, blobs blob.Store, res *agentjob.Result) (blob.Ref, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return blob.Ref{}, err
	}
	return blob.PutBytes(ctx, blobs, b)
}

// report hands the outcome to the core, tried again a few times: a store that does not answer
// now may answer in a moment, and a completion is idempotent. One never delivered is failed
// and refunded by the core's timeout.
func (r *Runner) report(ctx context.Context, spec agentjob.Spec, out worker.Outcome, ref *blob.Ref) error {
	var err error
	for attempt := range 6 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		if err = r.opts.Report(ctx, spec.JobID, spec.Secret, out.Outcome, out.ErrorMessage, ref); err == nil {
			return nil
		}
	}
	return err
}

// cleanUp removes the job's work tree; the directory itself stays, the job's claim, with the
// worker's log.
func (r *Runner) cleanUp(dir string) {
	for _, d := range []string{"repo", "home", "tmp", "outcome.json"} {
		os.RemoveAll(filepath.Join(dir, d))
	}
}

func scrub(msg, token string) string {
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "[redacted]")
	}
	return msg
}

// tail is the end of the worker's log, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 1000 {
		s = s[len(s)-1000:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
