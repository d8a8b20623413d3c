package app

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
)

// IdentityCache keeps recently read API-key index entries and user documents in memory, so an
// authenticated request costs no storage read. Every user event projected in this process
// clears it (see functions/user_projector.go), which covers every write on the embedded default; the TTL
// bounds how long a change made by another process (another Cloud Functions instance) can go
// unseen here. A read that raced with a clear is not cached (the epoch check).
type IdentityCache struct {
	ttl   time.Duration
	epoch atomic.Uint64

	mu    sync.RWMutex
	keys  map[string]cacheEntry[projections.KeyIndexDoc]
	users map[string]cacheEntry[projections.UserDoc]
}

type cacheEntry[T any] struct {
	v       T
	expires time.Time
}

// maxCached bounds each map; past it the map starts over (entries are cheap to reload).
const maxCached = 50_000

func NewIdentityCache(ttl time.Duration) *IdentityCache {
	return &IdentityCache{ttl: ttl, keys: map[string]cacheEntry[projections.KeyIndexDoc]{},
		users: map[string]cacheEntry[projections.UserDoc]{}}
}

// Invalidate forgets everything, and makes reads already in flight not cache what they read.
func (c *IdentityCache) Invalidate() {
	if c == nil {
		return
	}
	c.epoch.Add(1)
	c.mu.Lock()
	clear(c.keys)
	clear(c.users)
	c.mu.Unlock()
}

func cached[T any](c *IdentityCache, m func() map[string]cacheEntry[T], id string, load func() (T, error)) (T, error) {
	if c == nil || c.ttl <= 0 {
		return load()
	}
	now := time.Now()
	c.mu.RLock()
	e, ok := m()[id]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	epoch := c.epoch.Load()
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.epoch.Load() == epoch {
		mm := m()
		if len(mm) >= maxCached {
			clear(mm)
		}
		mm[id] = cacheEntry[T]{v: v, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return v, nil
}

// User reads userID's document through the cache.
func (c *IdentityCache) User(ctx context.Context, a *App, userID string) (projections.UserDoc, error) {
	return cached(c, func() map[string]cacheEntry[projections.UserDoc] { return c.users }, userID, func() (projections.UserDoc, error) {
		return projections.Get[projections.UserDoc](ctx, a.Docs, projections.UsersCollection, userID)
	})
}

func (c *IdentityCache) key(ctx context.Context, a *App, hash string) (projections.KeyIndexDoc, error) {
	return cached(c, func() map[string]cacheEntry[projections.KeyIndexDoc] { return c.keys }, hash, func() (projections.KeyIndexDoc, error) {
		return projections.Get[projections.KeyIndexDoc](ctx, a.Docs, projections.APIKeysCollection, hash)
	})
}

// cachedLookup is the Authenticator's read side, through the cache.
type cachedLookup struct {
	a     *App
	cache *IdentityCache
}

func (l cachedLookup) KeyByHash(ctx context.Context, hash string) (auth.KeyRecord, error) {
	k, err := l.cache.key(ctx, l.a, hash)
	if errors.Is(err, projections.ErrNotFound) {
		return auth.KeyRecord{}, auth.ErrUnknown
	}
	if err != nil {
		return auth.KeyRecord{}, err
	}
	return auth.KeyRecord{KeyID: k.KeyID, UserID: k.UserID, ExpiresAt: k.ExpiresAt, Revoked: k.Revoked, UserActive: k.UserActive}, nil
}

func (l cachedLookup) User(ctx context.Context, userID string) (auth.UserRecord, error) {
	u, err := l.cache.User(ctx, l.a, userID)
	if errors.Is(err, projections.ErrNotFound) {
		return auth.UserRecord{}, auth.ErrUnknown
	}
	if err != nil {
		return auth.UserRecord{}, err
	}
	return auth.UserRecord{Active: u.Active, TokenGeneration: u.TokenGeneration}, nil
}
