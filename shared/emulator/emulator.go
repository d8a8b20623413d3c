// Package emulator is the one place that decides what a test needing a Google Cloud emulator does
// when that emulator is not running: outside CI it skips, saying which variable is missing and
// that `make test` starts the emulators; with CI=true it fails, because CI must run them.
package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
)

// The environment variables the Google Cloud client libraries read to talk to an emulator.
const (
	Firestore = "FIRESTORE_EMULATOR_HOST"
	PubSub    = "PUBSUB_EMULATOR_HOST"
)

// Require skips (or, in CI, fails) tb unless every named emulator variable is set.
func Require(tb testing.TB, vars ...string) {
	tb.Helper()
	for _, v := range vars {
		if os.Getenv(v) != "" {
			continue
		}
		msg := v + " is not set: this test needs the emulator; `make test` (scripts/emulators.sh) starts it"
		if InCI() {
			tb.Fatal("CI=true: " + msg)
		}
		tb.Skip(msg)
	}
}

// InCI reports whether CI is set to a true value.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Project returns a project id no other test uses. The emulators keep each project's data apart,
// so tests on one emulator run in parallel without seeing each other's documents or topics.
func Project(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}
