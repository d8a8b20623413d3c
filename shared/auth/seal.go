package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrSealedByOtherKey: the sealed value was made with a key this Sealer does not hold (the key
// was rotated); the user has to log in again.
var ErrSealedByOtherKey = errors.New("sealed with another key")

// Sealer encrypts stored secrets (users' GitHub tokens) with AES-256-GCM. The sealed form is
// "<key id>.<base64url(nonce|ciphertext)>"; the key id is derived from the key, so a value
// sealed under a rotated key is recognised instead of failing as corrupt. The additional data
// binds a sealed value to its owner: a token copied onto another user does not open.
type Sealer struct {
	id   string
	aead cipher.AEAD
}

// NewSealer takes a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("token encryption key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("codeset-sealer:"), key...))
	return &Sealer{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// ParseSealerKey reads a base64 (standard or URL) 32-byte key.
func ParseSealerKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("token encryption key is not base64")
	}
	return b, nil
}

// Seal encrypts plaintext for owner.
func (s *Sealer) Seal(plaintext, owner string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(owner))
	return s.id + "." + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value sealed for owner.
func (s *Sealer) Open(sealed, owner string) (string, error) {
	id, body, ok := strings.Cut(sealed, ".")
	if !ok {
		return "", errors.New("sealed value is malformed")
	}
	if id != s.id {
		return "", ErrSealedByOtherKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("sealed value is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return "", errors.New("sealed value does not open (tampered, or sealed for someone else)")
	}
	return string(plain), nil
}
