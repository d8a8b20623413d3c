// Package codeset is the package Cloud Functions builds: one source archive, one deployed
// function per entry point. Its init registers every entry of the tables of package functions
// with functions-framework-go under its name: each route (see functions/routes.go), each
// consumer (the push endpoint of its Pub/Sub subscription) and the outbox relay (a Cloud
// Scheduler target). Only this package imports functions-framework-go, so the codeset binary
// (and every sandbox agent it starts) does not pay for its initialisation.
package codeset

import (
	ff "github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/codeset/codeset/functions"
)

// init runs after every init of package functions (consumers join their table from the init
// of their own files).
func init() {
	for _, rt := range functions.Routes {
		ff.HTTP(rt.Name, functions.FunctionHandler(rt))
	}
	for _, c := range functions.Consumers {
		ff.HTTP(c.Name, functions.ConsumerFunction(c.Name))
	}
	ff.HTTP("OutboxRelay", functions.RelayFunction)
}
