// Package codeset is the package Cloud Functions builds: one source archive, one deployed
// function per entry point. Importing functions runs its init, which registers every operation
// with functions-framework-go under its function name (see functions/routes.go).
package codeset

import _ "github.com/codeset/codeset/functions"
