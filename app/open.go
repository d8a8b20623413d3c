package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/api/option"

	evsqlite "github.com/codeset/codeset/events/sqlite"
	"github.com/codeset/codeset/projections"
	docsqlite "github.com/codeset/codeset/projections/sqlite"
	"github.com/codeset/codeset/shared/agentjob/cloudrunjobs"
	"github.com/codeset/codeset/shared/agentjob/localrunner"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/blob/fsblob"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/logging"
	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/runtimes"
	"github.com/codeset/codeset/shared/sqlitedb"
)

// Open assembles the App for cfg running w: the embedded default (one SQLite file in the data
// dir, the in-process bus) or the GCP backend (Firestore, Pub/Sub). Nothing is opened in init,
// and the clients only some functions use (the sandbox runtime, Cloud Storage) are opened on
// their first use, so a Cloud Function's cold start pays only for what it uses; a failed
// opening is tried again by the next use (OpenAll opens them at once).
func Open(ctx context.Context, cfg config.Config, w Wiring) (*App, error) {
	if cfg.DataDir != "" {
		// Absolute once and for all: paths under it (environment archives, sandboxes) are
		// joined and handed to other processes, whose working directory is not this one's. The
		// default, ./.codeset, once reached the local runtime as a relative path and was
		// resolved twice.
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data dir %q: %w", cfg.DataDir, err)
		}
		cfg.DataDir = abs
	}
	if cfg.DeliveryWait <= 0 {
		return nil, fmt.Errorf("--delivery-wait must be above 0 (it is %s)", cfg.DeliveryWait)
	}
	if margin := DeliveryMargin(cfg.AckDeadline); cfg.Backend == "gcp" && cfg.ConsumerBase != "" && cfg.DeliveryWait+margin > cfg.AckDeadline {
		return nil, fmt.Errorf("--delivery-wait (%s) must stay %s under the push subscriptions' --ack-deadline (%s): a delivery that outlives it is delivered again", cfg.DeliveryWait, margin, cfg.AckDeadline)
	}
	if cfg.Scheduler != "" && cfg.Scheduler != "internal" && cfg.Scheduler != "external" {
		return nil, fmt.Errorf("unknown scheduler %q (want internal or external)", cfg.Scheduler)
	}
	a := &App{Config: cfg, Wiring: w, Clock: clock.System{}, Logger: logging.New(os.Stderr, level(cfg.LogLevel)), Console: os.Stdout,
		Samples: &projections.SampleIndex{}, Completions: projections.NewCompletions()}
	var err error
	switch cfg.Backend {
	case "embedded":
		err = a.openEmbedded(ctx)
	case "gcp":
		err = a.openGCP(ctx)
	default:
		err = fmt.Errorf("unknown backend %q (want embedded or gcp)", cfg.Backend)
	}
	if err == nil {
		err = a.openIdentity()
	}
	if err == nil {
		err = a.openSandboxes(ctx)
	}
	if err == nil {
		err = a.openAgentRunner(ctx)
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// DeliveryMargin is what a push delivery needs beyond its wait for the work (reading the stream,
// recording the outcome, answering) under an ack deadline: 30 s, or half a short deadline.
func DeliveryMargin(ackDeadline time.Duration) time.Duration {
	return min(30*time.Second, ackDeadline/2)
}

func (a *App) openEmbedded(ctx context.Context) error {
	// `codeset serve` writes one access line per request: batching the writes keeps the log cheap
	// at tens of thousands of requests a second (warnings and errors still go out at once).
	logs := logging.NewBuffered(os.Stderr, 20*time.Millisecond)
	a.Logger = logging.New(logs, level(a.Config.LogLevel))
	a.closers = append(a.closers, logs.Close)
	if err := os.MkdirAll(a.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := sqlitedb.Open(filepath.Join(a.Config.DataDir, "codeset.db"))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, db.Close)
	es, err := evsqlite.New(db)
	if err != nil {
		return err
	}
	ds, err := docsqlite.New(db)
	if err != nil {
		return err
	}
	a.Events, a.Docs = es, ds
	if a.Blobs, err = fsblob.New(filepath.Join(a.Config.DataDir, "blobs")); err != nil {
		return err
	}
	a.openPipeline()
	a.startBus()
	return nil
}

// openSandboxes sets up the sandbox runtime the configuration names, opened on first use:
// local processes under the data dir (namespaces where the kernel allows) or Cloud Run
// services. Their Describe is logged at start by the sandbox recovery task.
func (a *App) openSandboxes(context.Context) error {
	cfg := a.Config
	rt := &lazyRuntime{once[sandbox.Runtime]{open: func() (sandbox.Runtime, error) {
		// Not the context of the request that happens to open it: the client outlives it.
		rt, _, err := runtimes.FromConfig(context.Background(), cfg)
		if err != nil {
			return nil, fmt.Errorf("sandboxes: %w", err)
		}
		return rt, nil
	}}}
	a.Sandboxes = rt
	a.closers = append(a.closers, rt.close)
	return nil
}

// OpenAll opens now what Open leaves to first use (the sandbox runtime, the blob store's
// client): a long-lived process such as `codeset serve` should fail at start on a bad setting,
// where a function instance opens only what its requests use.
func (a *App) OpenAll() error {
	if rt, ok := a.Sandboxes.(*lazyRuntime); ok {
		if _, err := rt.get(); err != nil {
			return err
		}
	}
	if b, ok := a.Blobs.(*lazyBlobs); ok {
		if _, err := b.get(); err != nil {
			return err
		}
	}
	return nil
}

// openAgentRunner builds the runner of agent jobs the sandbox runtime implies: local processes
// that report through the App itself, or Cloud Run job executions that report to the API. On
// Cloud Run without a configured job there is none, and a job fails at launch saying why.
func (a *App) openAgentRunner(ctx context.Context) error {
	cfg := a.Config
	switch {
	case cfg.Runtime == "local":
		r, err := localrunner.New(localrunner.Options{DataDir: cfg.DataDir, Binary: cfg.SandboxBinary, Report: a.ReportAgentJob, Isolation: cfg.SandboxIsolation})
		if err != nil {
			return fmt.Errorf("agent jobs: %w", err)
		}
		a.AgentRunner = r
	case cfg.Runtime == "cloudrun" && cfg.AgentJobName != "":
		signer, _ := a.Blobs.(blob.Signer)
		opts := cloudrunjobs.Options{Project: cfg.Project, Region: cfg.CloudRunRegion, Job: cfg.AgentJobName, Signer: signer, Log: a.Logger}
		if ep := cfg.CloudRunAdminEndpoint; ep != "" {
			opts.ClientOptions = []option.ClientOption{option.WithEndpoint(ep)}
			if strings.HasPrefix(ep, "http://") { // a local fake: no Google credentials for it
				opts.ClientOptions = append(opts.ClientOptions, option.WithoutAuthentication())
			}
		}
		r, err := cloudrunjobs.New(ctx, opts)
		if err != nil {
			return fmt.Errorf("agent jobs: %w", err)
		}
		a.AgentRunner = r
	}
	return nil
}

func level(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
