package functions

import (
	"context"
	"fmt"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/demo"
	"github.com/codeset/codeset/events"
)

// The demo dataset is loaded on the first start (when its stream is empty), so `make run` has
// tasks to work on from any working directory; --no-demo skips it. Later starts leave it alone:
// the operator may have imported other versions since. It goes first among the start-up tasks
// (a second or so, after /health answers), so that by the time the bootstrap key is written a
// user who reads it finds the demo listed. A demo that cannot be loaded (no git on the PATH,
// say) is logged and does not stop the server: it is a convenience, not a dependency.

// demoTask is the start-up task that loads the demo dataset.
func demoTask(ctx context.Context, a *app.App) error {
	if err := loadDemo(ctx, a); err != nil && ctx.Err() == nil {
		a.Logger.ErrorContext(ctx, "demo dataset not loaded; the server runs without it", "error", err.Error())
	}
	return nil
}

func loadDemo(ctx context.Context, a *app.App) error {
	if a.Config.NoDemo {
		return nil
	}
	v, err := a.Events.Version(ctx, events.DatasetStream(demo.Name))
	if err != nil {
		return fmt.Errorf("demo dataset: %w", err)
	}
	if v > 0 {
		return nil
	}
	rows, err := demo.Rows()
	if err != nil {
		return err
	}
	res, err := ImportDataset(ctx, a, rows, nil, ImportOptions{Dataset: demo.Name, Description: demo.Description})
	if err != nil {
		return fmt.Errorf("demo dataset: %w", err)
	}
	a.Logger.InfoContext(ctx, "demo dataset loaded", "dataset", demo.Name, "samples", res.New)
	return nil
}
