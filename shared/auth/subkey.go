package auth

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Subkey derives a key for another purpose, named by label, from the ring's signing key, and
// returns it with that key's kid: a deployment then needs no secret beyond its JWT keys, and the
// JWT key itself is never used for anything but tokens. Who stores something derived from a
// subkey stores the kid with it and derives again with SubkeyOf, so a rotated ring (a new key in
// front) still derives the old subkeys while the old key is listed.
func (r *KeyRing) Subkey(label string) (kid string, key []byte) {
	k := r.keys[0]
	return k.ID, subkey(k, label)
}

// SubkeyOf derives the subkey named label from the ring's key kid; ok is false when the ring
// no longer lists that key.
func (r *KeyRing) SubkeyOf(kid, label string) (key []byte, ok bool) {
	k, ok := r.byID[kid]
	if !ok {
		return nil, false
	}
	return subkey(*k, label), true
}

// subkey is HMAC-SHA256 keyed with the JWT key's secret (an Ed25519 seed or an HS256 secret,
// 32 random bytes or more) over a label of its own.
func subkey(k Key, label string) []byte {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte("codeset subkey\x00" + label))
	return m.Sum(nil)
}
