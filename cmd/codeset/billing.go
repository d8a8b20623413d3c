package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/codeset/codeset/functions"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
)

// errDifferences makes the command exit 1 when the read models disagree with the log.
var errDifferences = errors.New("the balance read model differs from the event log")

// billingReplay recomputes every balance (or one user's) from the event log alone and prints a
// reconciliation table against the balance read model. It only reads, so it runs beside a
// `codeset serve` on the same data dir (SQLite in WAL mode lets readers in).
func billingReplay(args []string) error {
	fs := flag.NewFlagSet("billing replay", flag.ContinueOnError)
	var cfg config.Config
	if err := cfg.Bind(fs); err != nil {
		return err
	}
	user := fs.String("user", "", "replay only this user id")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.LogLevel = "error"
	ctx := context.Background()
	a, err := functions.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	var (
		r     *projections.Replay
		diffs []projections.Difference
	)
	// A write in flight on a running server is in the log a moment before its projection: a
	// difference is confirmed by a second pass before it is reported.
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		r = projections.NewReplay(*user)
		if err := r.Run(ctx, a.Events); err != nil {
			return err
		}
		if diffs, err = r.Reconcile(ctx, a.Docs); err != nil {
			return err
		}
		if differences(diffs) == 0 {
			break
		}
	}
	if bad := projections.PrintReconciliation(os.Stdout, diffs, r.Events); bad > 0 {
		return fmt.Errorf("%w: %d users", errDifferences, bad)
	}
	return nil
}

func differences(diffs []projections.Difference) int {
	n := 0
	for _, d := range diffs {
		if !d.Equal() {
			n++
		}
	}
	return n
}
