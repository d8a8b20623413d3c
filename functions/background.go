package functions

import (
	"context"
	"sync"
)

// Task is work `codeset serve` does besides answering requests: once at start (bootstrap user,
// demo dataset) or until shutdown (the bus dispatcher, the reaper, the outbox relay). On GCP the
// loops are Cloud Scheduler jobs and Pub/Sub subscriptions instead.
type Task struct {
	Name string
	Run  func(ctx context.Context, a *App) error
}

// Startup tasks run once, in order, when the server starts; Loops run until it stops. Capability
// files add theirs from init.
var (
	Startup []Task
	Loops   []Task
)

// Start runs the startup tasks, then the loops in the background. It returns when the startup
// tasks are done; wait on the returned WaitGroup after cancelling ctx for the loops to end.
func (a *App) Start(ctx context.Context) (*sync.WaitGroup, error) {
	for _, t := range Startup {
		if err := t.Run(ctx, a); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	for _, t := range Loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.Run(ctx, a); err != nil && ctx.Err() == nil {
				a.Logger.Error("background task stopped", "task", t.Name, "error", err.Error())
			}
		}()
	}
	return &wg, nil
}
