package app

import (
	"testing"
	"time"

	"github.com/codeset/codeset/projections"
)

func TestIdentityCache(t *testing.T) {
	c := NewIdentityCache(time.Hour)
	users := func() map[string]cacheEntry[projections.UserDoc] { return c.users }
	loads := 0
	load := func(v int64) func() (projections.UserDoc, error) {
		return func() (projections.UserDoc, error) {
			loads++
			var d projections.UserDoc
			d.Version = v
			return d, nil
		}
	}
	if d, _ := cached(c, users, "u", load(1)); d.Version != 1 || loads != 1 {
		t.Fatal("first read")
	}
	if d, _ := cached(c, users, "u", load(2)); d.Version != 1 || loads != 1 {
		t.Fatal("a cached read went to storage")
	}
	c.Invalidate()
	if d, _ := cached(c, users, "u", load(2)); d.Version != 2 || loads != 2 {
		t.Fatal("a read after a clear was served from the cache")
	}
	// A clear during a read (a projection landing while the old document was being read) must
	// keep that read out of the cache.
	c.Invalidate()
	stale := func() (projections.UserDoc, error) {
		d, err := load(2)()
		c.Invalidate()
		return d, err
	}
	cached(c, users, "u", stale)
	if _, ok := c.users["u"]; ok {
		t.Fatal("a read that raced with a clear was cached")
	}
	// Expired entries are read again.
	short := NewIdentityCache(time.Millisecond)
	sUsers := func() map[string]cacheEntry[projections.UserDoc] { return short.users }
	cached(short, sUsers, "u", load(3))
	time.Sleep(5 * time.Millisecond)
	if d, _ := cached(short, sUsers, "u", load(4)); d.Version != 4 {
		t.Fatal("an expired entry was served")
	}
	// No cache at all with a zero TTL.
	off := NewIdentityCache(0)
	oUsers := func() map[string]cacheEntry[projections.UserDoc] { return off.users }
	cached(off, oUsers, "u", load(5))
	if d, _ := cached(off, oUsers, "u", load(6)); d.Version != 6 {
		t.Fatal("a zero TTL cached")
	}
}
