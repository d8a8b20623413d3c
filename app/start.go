package app

import (
	"context"
	"sync"
	"time"
)

// Start runs the wiring's startup tasks, then in the background until ctx ends: the embedded
// default's bus, and a ticker for each scheduled job unless they are called from outside
// (--scheduler external; on GCP those are Cloud Scheduler's calls and Pub/Sub's pushes). It
// returns when the startup tasks are done; wait on the returned WaitGroup after cancelling ctx
// for the background work to end.
func (a *App) Start(ctx context.Context) (*sync.WaitGroup, error) {
	a.starting.Store(true)
	defer a.starting.Store(false)
	for _, t := range a.Wiring.Startup {
		if err := t.Run(ctx, a); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.RunBus(ctx); err != nil && ctx.Err() == nil {
			a.Logger.Error("the bus stopped", "error", err.Error())
		}
	}()
	for _, j := range a.tickedJobs() {
		every := j.Every(a.Config)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.tick(ctx, j, every)
		}()
	}
	return &wg, nil
}

// Starting reports whether Start is still running the startup tasks: the server answers
// already (Pub/Sub pushes the startup tasks' own events to it), but what they make (the demo
// dataset, the bootstrap key) may not exist yet.
func (a *App) Starting() bool { return a.starting.Load() }

// tickedJobs are the scheduled jobs this process runs on its own tickers: none when a scheduler
// calls them from outside, else those with a local period.
func (a *App) tickedJobs() []Job {
	if a.ExternalScheduler() {
		return nil
	}
	var out []Job
	for _, j := range a.Wiring.Jobs {
		if j.Every(a.Config) > 0 {
			out = append(out, j)
		}
	}
	return out
}

// RunBus runs the embedded default's in-process bus until ctx ends (Start does); on GCP there is
// none, and it returns at once.
func (a *App) RunBus(ctx context.Context) error {
	if a.pipeline == nil || a.pipeline.bus == nil {
		return nil
	}
	return a.pipeline.bus.Run(ctx)
}

// tick runs job j now and then every period until ctx ends; a failed pass is logged and the
// next tick tries again.
func (a *App) tick(ctx context.Context, j Job, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := j.Run(ctx, a); err != nil && ctx.Err() == nil {
			a.Logger.ErrorContext(ctx, "scheduled job failed; retrying on the next tick", "job", j.Name, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
