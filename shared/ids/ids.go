// Package ids makes identifiers: random, URL-safe, sortable by creation time where that helps.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// New returns a 128-bit id as 32 hex characters whose first 12 encode the millisecond of
// creation, so ids sort roughly by time (useful for newest-first listings and log reading).
func New() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// Prefixed returns prefix + "_" + New(), e.g. "sess_0193...".
func Prefixed(prefix string) string { return prefix + "_" + New() }
