// Package firestoredb holds what the Firestore adapters (events/firestore, projections/firestore)
// share: opening the client, turning arbitrary names into valid document ids, and running a
// transaction within bounds.
package firestoredb

import (
	"context"
	"errors"
	"fmt"
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

// Bounds of every transaction. The emulator serialises contending transactions with locks and
// can keep one waiting for a long time; production Firestore aborts and retries. Either way a
// request must not hang or retry forever.
const (
	TxAttempts = 8
	TxTimeout  = 15 * time.Second
)

// ErrContention: a transaction kept colliding with others until its attempts or its deadline ran
// out. Callers map it to their own domain error.
var ErrContention = errors.New("firestore: transaction contention")

// RunTx runs fn in a transaction bounded by TxAttempts and TxTimeout. Errors returned by fn come
// back unchanged; running out of attempts or time (while ctx itself is still live) is
// ErrContention.
func RunTx(ctx context.Context, c *firestore.Client, fn func(context.Context, *firestore.Transaction) error) error {
	tctx, cancel := context.WithTimeout(ctx, TxTimeout)
	defer cancel()
	err := c.RunTransaction(tctx, fn, firestore.MaxAttempts(TxAttempts))
	if err != nil && ctx.Err() == nil && (status.Code(err) == codes.Aborted || tctx.Err() != nil) {
		return fmt.Errorf("%w: %v", ErrContention, err)
	}
	return err
}

// NotFound reports whether err is Firestore's not-found status.
func NotFound(err error) bool { return status.Code(err) == codes.NotFound }

// AlreadyExists reports whether err is Firestore's already-exists status (a Create that lost).
func AlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }
