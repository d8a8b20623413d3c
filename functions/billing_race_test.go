//go:build race

package functions

// raceBuild: the race detector slows the billing simulation several times over, so `make test`
// (which runs with -race) runs fewer, shorter seeds; `go test` without -race runs them all.
const raceBuild = true
