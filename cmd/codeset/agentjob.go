package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/agentjob/worker"
)

// agentJobRun is `codeset agent-job run`: one agent job, configured by its environment
// (worker.Env*), run by the local runner in a sandbox and by the Cloud Run job's runner image as
// its entry point (docs/AGENT_JOBS.md).
func agentJobRun(args []string) error {
	fs := flag.NewFlagSet("agent-job run", flag.ContinueOnError)
	fs.Usage = func() {
		fs.Output().Write([]byte("usage: codeset agent-job run\n\nRuns one agent job as its environment describes (CODESET_AGENT_JOB_*, see docs/AGENT_JOBS.md).\n"))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("no arguments expected: the job is in the environment")
	}
	// The environment holds the completion secret and the git token: not dumpable, so the
	// agent's processes cannot read them from /proc without privileges.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	j, err := worker.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return worker.Run(ctx, j, nil, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
}
