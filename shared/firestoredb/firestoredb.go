// Package firestoredb holds what the Firestore adapters (events/firestore, projections/firestore)
// share: opening the client, turning arbitrary names into valid document ids, and the bounds and
// retry rule of their optimistic writes.
package firestoredb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Open returns a client for project's default database. With FIRESTORE_EMULATOR_HOST set the
// client library talks to the emulator without credentials. The connection is made on first use.
func Open(ctx context.Context, project string) (*firestore.Client, error) {
	c, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("firestore client for %s: %w", project, err)
	}
	return c, nil
}

// ID maps any string to a valid document id, one to one: Firestore ids cannot contain "/", be
// "." or "..", or look like "__x__", so "%" and "/" are percent-escaped, as are the dots and
// underscores that would make a reserved id. Ids without those characters are unchanged.
func ID(s string) string {
	switch s {
	case "":
		return "%" // a lone "%" is never the escape of anything else
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	if strings.ContainsAny(s, "%/") {
		s = strings.NewReplacer("%", "%25", "/", "%2F").Replace(s)
	}
	if len(s) >= 4 && strings.HasPrefix(s, "__") && strings.HasSuffix(s, "__") {
		s = "%5F" + s[1:]
	}
	return s
}

// Writers here are optimistic rather than transactions that read: they read, decide, and
// commit guarded by preconditions (a document unchanged since it was read, or still absent), and
// on a lost race read and decide again. A transaction that reads holds locks, which the emulator
// resolves only by timing out when many writers race for one document; a precondition fails at
// once. These bound every such loop.
const (
	Attempts = 40               // tries before giving up on a contended document
	Timeout  = 20 * time.Second // and the time they may take together
)

// LostRace reports whether a guarded commit failed because another writer got there first: a
// document it meant to create exists, or one it read has changed (or gone) since.
func LostRace(err error) bool {
	switch status.Code(err) {
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted, codes.NotFound:
		return true
	}
	return false
}

// Backoff waits before retry number attempt (1, 2, ...): a short, jittered, growing delay, so
// that racing writers spread out. It returns early with ctx's error.
func Backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 7)) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NotFound reports whether err is Firestore's not-found status.
func NotFound(err error) bool { return status.Code(err) == codes.NotFound }

// AlreadyExists reports whether err is Firestore's already-exists status (a Create that lost).
func AlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }
