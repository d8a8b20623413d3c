// Package emulator is the one place that decides what a test needing a Google Cloud emulator does
// when that emulator is not running: outside CI it skips, saying which variable is missing and
// that `make test` starts the emulators; with CI=true it fails, because CI must run them.
package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
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

// Storage is the variable the Cloud Storage client reads to talk to an emulator.
const Storage = "STORAGE_EMULATOR_HOST"

var (
	storageOnce sync.Once
	storageSrv  *fakestorage.Server
	storageErr  error
)

// Bucket returns a fresh bucket of an in-process Cloud Storage emulator (fake-gcs-server on a
// loopback port), one per test process, and points STORAGE_EMULATOR_HOST at it so that the
// clients the code under test builds find it. Unlike the Firestore and Pub/Sub emulators it
// needs nothing installed, so it never skips.
func Bucket(tb testing.TB) string {
	tb.Helper()
	storageOnce.Do(func() {
		// Its public host is its own: a client pointed at an emulator reads objects by path on
		// the emulator's host, which the fake otherwise serves only for storage.googleapis.com.
		storageSrv, storageErr = fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http", PublicHost: "127.0.0.1"})
		if storageErr == nil {
			storageErr = os.Setenv(Storage, strings.TrimPrefix(storageSrv.URL(), "http://"))
		}
	})
	if storageErr != nil {
		tb.Fatalf("the in-process Cloud Storage emulator: %v", storageErr)
	}
	b := make([]byte, 8)
	rand.Read(b)
	bucket := "test-" + hex.EncodeToString(b)
	storageSrv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return bucket
}
