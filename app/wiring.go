package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/config"
)

// Wiring is everything an App runs, declared as tables by package functions and handed to Open:
// the local server, the Cloud Functions registration and the push subscriptions all read them.
type Wiring struct {
	Routes []Route
	// Pages are served beside the API by `codeset serve` (the contract and its docs page), by
	// mux pattern.
	Pages     map[string]http.HandlerFunc
	Consumers []Consumer
	// Startup tasks run once, in order, when `codeset serve` starts.
	Startup []Task
	Jobs    []Job
	// AgentJobReport records how an agent job ended, as its completion endpoint does: what a
	// runner that cannot reach that endpoint calls (App.ReportAgentJob).
	AgentJobReport func(ctx context.Context, a *App, jobID, secret, outcome, errorMessage string, result *blob.Ref) error
}

// Auth says what a route asks of the caller.
type Auth int

const (
	Public Auth = iota // anyone
	Bearer             // a JWT access token or an API key
)

// Prefix is where the API is served.
const Prefix = "/api/v1"

// Handler is an endpoint: it writes its success response itself and returns any error, which
// the route wrapper writes in the spec's shape.
type Handler func(a *App, w http.ResponseWriter, r *http.Request) error

// Route is one operation of the API.
type Route struct {
	Method  string
	Path    string // as in the spec, relative to /api/v1
	Name    string // the Cloud Function's name (its entry point)
	Auth    Auth
	Handler Handler
}

// Consumer is a projector or a process manager fed by the bus. Its Name is also its Cloud
// Function name and its Pub/Sub push subscription. Handle sees every event of a stream in order
// (the runner fills gaps from the store and skips what it has already applied), but after a
// crash it may see an event again: it must be idempotent.
type Consumer struct {
	Name   string
	Wants  func(e events.Envelope) bool // nil: every event
	Handle func(ctx context.Context, a *App, e events.Envelope) error
	// Inline projectors also run in the request that appended the events (see Update), so a
	// client reads its own writes at once; the bus's later delivery is then a no-op.
	Inline bool
	// InlineBatch, when set, is how an inline projector takes the events of one write: all at
	// once, outside the runner (the catalog's, for an import's batches of hundreds of events);
	// the bus's later deliveries find them applied.
	InlineBatch func(ctx context.Context, a *App, evs []events.Envelope) error
	// SelfVersioned handlers keep their own version per stream (projections.ProjectStream): the
	// runner keeps no checkpoint for them (see projections.RunnerOptions.SelfVersioned).
	SelfVersioned bool
}

// Task is work `codeset serve` does once at start (bootstrap user, demo dataset, recoveries).
// On GCP nothing runs only at start.
type Task struct {
	Name string
	Run  func(ctx context.Context, a *App) error
}

// Job is a scheduled job: an HTTP function that Cloud Scheduler calls on GCP, and a ticker of
// `codeset serve` locally. Each call is one bounded, idempotent pass, safe when two overlap.
type Job struct {
	Name string // its Cloud Function name (entry point)
	// Every is the local ticker's period for cfg; 0 runs no ticker (the job is not needed there).
	Every func(cfg config.Config) time.Duration
	// Run makes one pass; its result is the function's JSON answer.
	Run func(ctx context.Context, a *App) (any, error)
}

// consumer returns the consumer named name.
func (w Wiring) consumer(name string) (Consumer, error) {
	for _, c := range w.Consumers {
		if c.Name == name {
			return c, nil
		}
	}
	return Consumer{}, fmt.Errorf("no consumer %q", name)
}
