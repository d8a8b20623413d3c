// Package codeset is the package Cloud Functions builds: one source archive, one deployed
// function per entry point. Its init registers every entry of the tables of package functions
// (functions.Wiring) with functions-framework-go under its name: each route, each consumer (the
// push endpoint of its Pub/Sub subscription) and each scheduled job (a Cloud Scheduler target).
// Only this package imports functions-framework-go, so the codeset binary (and every sandbox
// agent it starts) does not pay for its initialisation.
package codeset

import (
	ff "github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/functions"
)

func init() {
	w := functions.Wiring()
	p := app.NewProcess(w)
	for _, rt := range w.Routes {
		ff.HTTP(rt.Name, p.RouteFunction(rt))
	}
	for _, c := range w.Consumers {
		ff.HTTP(c.Name, p.ConsumerFunction(c.Name))
	}
	for _, j := range w.Jobs {
		ff.HTTP(j.Name, p.JobFunction(j))
	}
	// The instance's buffers are written out when Cloud Run tells it to stop.
	p.StopOnSignal()
}
