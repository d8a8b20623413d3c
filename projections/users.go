package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/auth"
)

// The user read models: the user document (the user aggregate's fold, plus when each API key was
// last used) and the API-key index, keyed by the SHA-256 of the key so that authenticating is
// one document read.
const (
	UsersCollection   = "users"
	APIKeysCollection = "api_keys"
)

// UserDoc is a user's document. KeyLastUsed is written by the last-used flusher, not by events:
// it is telemetry, and a rebuild from the log starts it empty.
type UserDoc struct {
	events.User
	KeyLastUsed map[string]time.Time `json:"key_last_used,omitempty"`
}

// KeyIndexDoc is the index entry of one API key. UserActive is copied from the user so that an
// API-key request needs no second read.
type KeyIndexDoc struct {
	KeyID      string     `json:"key_id"`
	UserID     string     `json:"user_id"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Revoked    bool       `json:"revoked"`
	UserActive bool       `json:"user_active"`
	Version    int64      `json:"version"` // the user-stream version last applied
}

// IsUserStream reports whether stream is a user's.
func IsUserStream(stream string) bool { return strings.HasPrefix(stream, "user-") }

// ProjectUser applies e, an event of a user stream, to the user document and the key index. It
// is idempotent: the document remembers the last version applied and anything at or below it is
// skipped; a gap (an earlier event not yet applied) is filled from the store with load, in order.
// The index is written before the user document, so a crash in between leaves the user document
// behind and the event is applied again on redelivery (index writes check versions too).
func ProjectUser(ctx context.Context, s DocStore, e events.Envelope,
	load func(ctx context.Context, stream string, from int64) ([]events.Envelope, error)) error {
	userID := strings.TrimPrefix(e.Stream, "user-")
	cur, err := Get[UserDoc](ctx, s, UsersCollection, userID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if e.Version <= cur.Version {
		return nil
	}
	evs := []events.Envelope{e}
	if e.Version != cur.Version+1 {
		if evs, err = load(ctx, e.Stream, cur.Version+1); err != nil {
			return fmt.Errorf("fill %s from %d: %w", e.Stream, cur.Version+1, err)
		}
	}
	next := cur.User
	for _, ev := range evs {
		if ev.Version != next.Version+1 || ev.Version > e.Version {
			continue
		}
		if err := next.Apply(ev); err != nil {
			return err
		}
		if err := indexKeys(ctx, s, &next, ev); err != nil {
			return err
		}
	}
	if next.Version == cur.Version {
		return fmt.Errorf("project %s@%d: the store does not hold version %d", e.Stream, e.Version, cur.Version+1)
	}
	return Update(ctx, s, UsersCollection, userID, func(d *UserDoc, exists bool) (bool, error) {
		if d.Version >= next.Version {
			return false, nil // a concurrent projection got there first
		}
		d.User = next
		return true, nil
	})
}

// indexKeys mirrors ev into the key index; u is the user after ev.
func indexKeys(ctx context.Context, s DocStore, u *events.User, ev events.Envelope) error {
	set := func(hash string, fn func(d *KeyIndexDoc, exists bool) bool) error {
		return Update(ctx, s, APIKeysCollection, hash, func(d *KeyIndexDoc, exists bool) (bool, error) {
			if exists && d.Version >= ev.Version {
				return false, nil
			}
			if !fn(d, exists) {
				return false, nil
			}
			d.Version = ev.Version
			return true, nil
		})
	}
	switch ev.Type {
	case events.APIKeyCreated:
		var d events.APIKeyCreatedData
		if err := ev.Decode(&d); err != nil {
			return err
		}
		return set(d.Hash, func(k *KeyIndexDoc, _ bool) bool {
			*k = KeyIndexDoc{KeyID: d.KeyID, UserID: u.ID, ExpiresAt: d.ExpiresAt, UserActive: u.Active}
			return true
		})
	case events.APIKeyRevoked:
		var d events.APIKeyRevokedData
		if err := ev.Decode(&d); err != nil {
			return err
		}
		return set(d.Hash, func(k *KeyIndexDoc, _ bool) bool {
			k.KeyID, k.UserID, k.Revoked = d.KeyID, u.ID, true
			return true
		})
	case events.UserDeactivated, events.UserReactivated:
		for _, key := range u.APIKeys {
			if key.RevokedAt != nil {
				continue
			}
			if err := set(key.Hash, func(k *KeyIndexDoc, exists bool) bool {
				k.UserActive = u.Active
				return exists
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecordKeyUses writes the last use of API keys into their users' documents, keeping the later
// time when two processes flush.
func RecordKeyUses(ctx context.Context, s DocStore, uses []auth.Use) error {
	var errs []error
	for _, use := range uses {
		err := Update(ctx, s, UsersCollection, use.UserID, func(d *UserDoc, exists bool) (bool, error) {
			if !exists || !d.KeyLastUsed[use.KeyID].Before(use.At) {
				return false, nil
			}
			if d.KeyLastUsed == nil {
				d.KeyLastUsed = map[string]time.Time{}
			}
			d.KeyLastUsed[use.KeyID] = use.At.UTC()
			return true, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("last use of key %s: %w", use.KeyID, err))
		}
	}
	return errors.Join(errs...)
}

// AuthLookup is auth.Lookup over the read models.
type AuthLookup struct{ Docs DocStore }

// KeyByHash reads the key index.
func (l AuthLookup) KeyByHash(ctx context.Context, hash string) (auth.KeyRecord, error) {
	k, err := Get[KeyIndexDoc](ctx, l.Docs, APIKeysCollection, hash)
	if errors.Is(err, ErrNotFound) {
		return auth.KeyRecord{}, auth.ErrUnknown
	}
	if err != nil {
		return auth.KeyRecord{}, err
	}
	return auth.KeyRecord{KeyID: k.KeyID, UserID: k.UserID, ExpiresAt: k.ExpiresAt, Revoked: k.Revoked, UserActive: k.UserActive}, nil
}

// User reads the user document.
func (l AuthLookup) User(ctx context.Context, userID string) (auth.UserRecord, error) {
	u, err := Get[UserDoc](ctx, l.Docs, UsersCollection, userID)
	if errors.Is(err, ErrNotFound) {
		return auth.UserRecord{}, auth.ErrUnknown
	}
	if err != nil {
		return auth.UserRecord{}, err
	}
	return auth.UserRecord{Active: u.Active, TokenGeneration: u.TokenGeneration}, nil
}
