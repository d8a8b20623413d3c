package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"math/big"
	"strings"
)

// API keys look like "cs_" + 40 base62 characters (about 238 random bits) + a 6-character
// base62 CRC32 of what precedes it. The prefix makes a leaked key easy to find with a secret
// scanner, and the checksum lets both the scanner and the server reject a mistyped or made-up
// key without a lookup.
const (
	KeyPrefix      = "cs_"
	keyRandomLen   = 40
	keyChecksumLen = 6
	// KeyLen is the length of every API key.
	KeyLen = len(KeyPrefix) + keyRandomLen + keyChecksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewAPIKey draws a new key.
func NewAPIKey() (string, error) {
	var b strings.Builder
	b.WriteString(KeyPrefix)
	max := big.NewInt(int64(len(base62)))
	for range keyRandomLen {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b.WriteByte(base62[n.Int64()])
	}
	body := b.String()
	return body + checksum(body), nil
}

func checksum(body string) string {
	c := uint64(crc32.ChecksumIEEE([]byte(body)))
	out := make([]byte, keyChecksumLen)
	for i := keyChecksumLen - 1; i >= 0; i-- {
		out[i] = base62[c%62]
		c /= 62
	}
	return string(out)
}

// LooksLikeAPIKey reports whether s has the API-key prefix (it is then never tried as a JWT).
func LooksLikeAPIKey(s string) bool { return strings.HasPrefix(s, KeyPrefix) }

// ValidAPIKey reports whether key is well formed: prefix, length, alphabet and checksum.
func ValidAPIKey(key string) bool {
	if len(key) != KeyLen || !strings.HasPrefix(key, KeyPrefix) {
		return false
	}
	for i := len(KeyPrefix); i < len(key); i++ {
		if strings.IndexByte(base62, key[i]) < 0 {
			return false
		}
	}
	body := key[:len(key)-keyChecksumLen]
	return checksum(body) == key[len(body):]
}

// HashAPIKey is the SHA-256 of the key in hex: the only form stored, and the id of its index
// document. A fast hash is right here: the key has over 200 random bits, nothing to brute-force.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyDisplay returns the characters kept to recognise a key: the prefix with the first four
// random characters, and the last four.
func KeyDisplay(key string) (prefix, last string) {
	return key[:len(KeyPrefix)+4], key[len(key)-4:]
}

// MaskKey renders a stored key for listings, e.g. "cs_AbCd…wXyZ".
func MaskKey(prefix, last string) string { return prefix + "…" + last }
