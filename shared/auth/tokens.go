// Package auth is who the caller is: JWT access and refresh tokens signed with a key ring, API
// keys (format, checksum, hash), the Authenticator that turns a Bearer header into a Principal,
// the in-memory last-used tracker of API keys, and the AES-GCM sealer of stored GitHub tokens.
package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token uses: an access token authenticates requests, a refresh token only buys access tokens.
const (
	UseAccess  = "access"
	UseRefresh = "refresh"
)

// Supported signing algorithms of the key ring.
const (
	AlgEdDSA = "EdDSA"
	AlgHS256 = "HS256"
)

// ErrInvalidToken is every reason a token is refused; the cause is wrapped for tests, never
// shown to the caller.
var ErrInvalidToken = errors.New("invalid token")

// Key is one key of the ring. For EdDSA, Secret is the 32-byte Ed25519 seed; for HS256 the
// shared secret (at least 32 bytes).
type Key struct {
	ID     string
	Alg    string
	Secret []byte

	sign   any // ed25519.PrivateKey or []byte
	verify any // ed25519.PublicKey or []byte
}

// KeyRing signs with its first key and verifies with any of them, chosen by the token's kid:
// add a new key in front, wait out the refresh-token lifetime, then drop the old one, and
// nobody is logged out.
type KeyRing struct {
	keys []Key
	byID map[string]*Key
}

// ParseKeyRing reads "kid:alg:base64url-secret" entries separated by commas (the format of
// CODESET_JWT_KEYS and of the embedded default's jwt-keys file).
func ParseKeyRing(spec string) (*KeyRing, error) {
	var keys []Key
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("JWT key %d: want kid:alg:base64url-secret", len(keys)+1)
		}
		secret, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		if err != nil {
			return nil, fmt.Errorf("JWT key %q: secret is not base64url", parts[0])
		}
		keys = append(keys, Key{ID: parts[0], Alg: parts[1], Secret: secret})
	}
	return NewKeyRing(keys...)
}

// NewKeyRing builds a ring; the first key signs.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("JWT key ring is empty")
	}
	r := &KeyRing{byID: map[string]*Key{}}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.ID == "" {
			return nil, errors.New("JWT key without a kid")
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("JWT key %q listed twice", k.ID)
		}
		seen[k.ID] = true
		switch k.Alg {
		case AlgEdDSA:
			if len(k.Secret) != ed25519.SeedSize {
				return nil, fmt.Errorf("JWT key %q: an EdDSA seed is %d bytes", k.ID, ed25519.SeedSize)
			}
			priv := ed25519.NewKeyFromSeed(k.Secret)
			k.sign, k.verify = priv, priv.Public()
		case AlgHS256:
			if len(k.Secret) < 32 {
				return nil, fmt.Errorf("JWT key %q: an HS256 secret is at least 32 bytes", k.ID)
			}
			k.sign, k.verify = k.Secret, k.Secret
		default:
			return nil, fmt.Errorf("JWT key %q: algorithm %q (want EdDSA or HS256)", k.ID, k.Alg)
		}
		r.keys = append(r.keys, k)
	}
	for i := range r.keys {
		r.byID[r.keys[i].ID] = &r.keys[i]
	}
	return r, nil
}

// GenerateKey returns a new random key of alg with kid id.
func GenerateKey(id, alg string) (Key, error) {
	n := 32
	if alg == AlgEdDSA {
		n = ed25519.SeedSize
	}
	secret := make([]byte, n)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Alg: alg, Secret: secret}, nil
}

// String is the key in the ring format. It holds the secret: write it only to 0600 files.
func (k Key) String() string {
	return k.ID + ":" + k.Alg + ":" + base64.RawURLEncoding.EncodeToString(k.Secret)
}

// Claims are the claims of every token this service issues.
type Claims struct {
	jwt.RegisteredClaims
	Use        string `json:"token_use"`
	Generation int    `json:"gen"`
}

// Tokens issues and checks JWTs: issuer, audience and lifetimes are fixed here.
type Tokens struct {
	Ring       *KeyRing
	Issuer     string
	Audience   string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Now        func() time.Time

	once   sync.Once
	parser *jwt.Parser
}

// maxTokenLen refuses absurd tokens before any parsing work.
const maxTokenLen = 4096

// Issue signs a token of use ("access" or "refresh") for userID at token generation gen.
func (t *Tokens) Issue(userID, use string, gen int) (token string, ttl time.Duration, err error) {
	ttl = t.AccessTTL
	if use == UseRefresh {
		ttl = t.RefreshTTL
	}
	now := t.now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", 0, err
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{t.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Use:        use,
		Generation: gen,
	}
	k := &t.Ring.keys[0]
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), c)
	tok.Header["kid"] = k.ID
	s, err := tok.SignedString(k.sign)
	if err != nil {
		return "", 0, fmt.Errorf("sign %s token: %w", use, err)
	}
	return s, ttl, nil
}

// Parse checks a token of the given use: the algorithm is the one its kid's key was configured
// with (never the one the token names alone), the signature, exp (required), nbf, iat, the
// issuer, the audience and the use.
func (t *Tokens) Parse(token, use string) (*Claims, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	var c Claims
	_, err := t.getParser().ParseWithClaims(token, &c, t.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Use != use {
		return nil, fmt.Errorf("%w: a %q token where %q was expected", ErrInvalidToken, c.Use, use)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return &c, nil
}

func (t *Tokens) getParser() *jwt.Parser {
	t.once.Do(func() {
		algs := map[string]bool{}
		var valid []string
		for _, k := range t.Ring.keys {
			if !algs[k.Alg] {
				algs[k.Alg] = true
				valid = append(valid, k.Alg)
			}
		}
		t.parser = jwt.NewParser(
			jwt.WithValidMethods(valid),
			jwt.WithIssuer(t.Issuer),
			jwt.WithAudience(t.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
			jwt.WithTimeFunc(t.now),
		)
	})
	return t.parser
}

// key pins the algorithm per kid: a token signed HS256 with an EdDSA key's kid (or the reverse)
// is refused even though both algorithms are valid somewhere in the ring.
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	kid, _ := tok.Header["kid"].(string)
	k, ok := t.Ring.byID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	if tok.Method.Alg() != k.Alg {
		return nil, fmt.Errorf("kid %q signs with %s, token says %s", kid, k.Alg, tok.Method.Alg())
	}
	return k.verify, nil
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}
