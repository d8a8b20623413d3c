// Package codeset is the package Cloud Functions builds: one source archive, one deployed
// function per entry point. Importing functions runs its init, which registers every operation
// with functions-framework-go under its function name (see functions/routes.go).
package codeset

import "github.com/codeset/codeset/functions"

// init registers each consumer (projector, process manager) as a function under its name, the
// push endpoint of its Pub/Sub subscription. It runs here, after every init of package
// functions, because consumers join the table from the init of their own files.
func init() { functions.RegisterConsumerFunctions() }
