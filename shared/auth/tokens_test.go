package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testRing(t *testing.T, keys ...Key) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func genKey(t *testing.T, id, alg string) Key {
	t.Helper()
	k, err := GenerateKey(id, alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testTokens(t *testing.T, ring *KeyRing, now time.Time) *Tokens {
	return &Tokens{Ring: ring, Issuer: "codeset", Audience: "codeset-api", AccessTTL: 15 * time.Minute,
		RefreshTTL: 24 * time.Hour, Now: func() time.Time { return now }}
}

func b64(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// sign builds a token by hand, with exactly the header and claims given.
func sign(t *testing.T, k Key, header, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(header["alg"].(string)), jwt.MapClaims(claims))
	tok.Header = header
	var key any = k.Secret
	if header["alg"] == AlgEdDSA {
		key = ed25519.NewKeyFromSeed(k.Secret)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokensRoundTripAndRotation(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old, cur := genKey(t, "old", AlgEdDSA), genKey(t, "new", AlgHS256)
	before := testTokens(t, testRing(t, old), now)
	tok, ttl, err := before.Issue("user_1", UseRefresh, 3)
	if err != nil || ttl != 24*time.Hour {
		t.Fatalf("issue: %v %v", ttl, err)
	}
	// After rotation the new key signs, and the old key's tokens still verify.
	after := testTokens(t, testRing(t, cur, old), now.Add(time.Hour))
	c, err := after.Parse(tok, UseRefresh)
	if err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	if c.Subject != "user_1" || c.Generation != 3 || c.Use != UseRefresh {
		t.Fatalf("claims %+v", c)
	}
	fresh, _, err := after.Issue("user_1", UseAccess, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Parse(fresh, UseAccess); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	// Once the old key is dropped its tokens stop working.
	dropped := testTokens(t, testRing(t, cur), now.Add(time.Hour))
	if _, err := dropped.Parse(tok, UseRefresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a dropped key accepted: %v", err)
	}
}

func TestTokensRefused(t *testing.T) {
	now := time.Now()
	ed, hs := genKey(t, "ed", AlgEdDSA), genKey(t, "hs", AlgHS256)
	tokens := testTokens(t, testRing(t, ed, hs), now)
	valid := func(over map[string]any) map[string]any {
		c := map[string]any{"iss": "codeset", "aud": []string{"codeset-api"}, "sub": "user_1",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "token_use": UseAccess, "gen": 0}
		for k, v := range over {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	edHeader := map[string]any{"alg": AlgEdDSA, "typ": "JWT", "kid": "ed"}
	good := sign(t, ed, edHeader, valid(nil))
	if _, err := tokens.Parse(good, UseAccess); err != nil {
		t.Fatalf("the control token is refused: %v", err)
	}
	parts := strings.Split(good, ".")
	edPub := ed25519.NewKeyFromSeed(ed.Secret).Public().(ed25519.PublicKey)

	cases := map[string]string{
		"alg none":                    b64(map[string]any{"alg": "none", "typ": "JWT", "kid": "ed"}) + "." + b64(valid(nil)) + ".",
		"HMAC with the EdDSA kid":     sign(t, Key{Secret: edPub}, map[string]any{"alg": AlgHS256, "kid": "ed"}, valid(nil)),
		"HMAC with the HS kid's seed": sign(t, Key{Secret: ed.Secret}, map[string]any{"alg": AlgHS256, "kid": "ed"}, valid(nil)),
		"EdDSA with the HMAC kid":     sign(t, ed, map[string]any{"alg": AlgEdDSA, "kid": "hs"}, valid(nil)),
		"tampered signature":          parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"tampered claims":             parts[0] + "." + b64(valid(map[string]any{"sub": "user_2"})) + "." + parts[2],
		"expired":                     sign(t, ed, edHeader, valid(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()})),
		"no exp":                      sign(t, ed, edHeader, valid(map[string]any{"exp": nil})),
		"wrong issuer":                sign(t, ed, edHeader, valid(map[string]any{"iss": "someone-else"})),
		"no issuer":                   sign(t, ed, edHeader, valid(map[string]any{"iss": nil})),
		"wrong audience":              sign(t, ed, edHeader, valid(map[string]any{"aud": []string{"other-api"}})),
		"issued in the future":        sign(t, ed, edHeader, valid(map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})),
		"refresh used as access":      sign(t, ed, edHeader, valid(map[string]any{"token_use": UseRefresh})),
		"no use":                      sign(t, ed, edHeader, valid(map[string]any{"token_use": nil})),
		"unknown kid":                 sign(t, genKey(t, "zz", AlgEdDSA), map[string]any{"alg": AlgEdDSA, "kid": "zz"}, valid(nil)),
		"no kid":                      sign(t, ed, map[string]any{"alg": AlgEdDSA}, valid(nil)),
		"signed by another key":       sign(t, genKey(t, "ed", AlgEdDSA), edHeader, valid(nil)),
		"no subject":                  sign(t, ed, edHeader, valid(map[string]any{"sub": nil})),
		"garbage":                     "garbage",
		"too long":                    good + strings.Repeat("A", maxTokenLen),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := tokens.Parse(tok, UseAccess); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("accepted: %+v, %v", c, err)
			}
		})
	}
	t.Run("access used to refresh", func(t *testing.T) {
		if _, err := tokens.Parse(good, UseRefresh); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("accepted: %v", err)
		}
	})
}

func flip(s string) string {
	b := []byte(s)
	if b[3] == 'A' {
		b[3] = 'B'
	} else {
		b[3] = 'A'
	}
	return string(b)
}

func TestParseKeyRing(t *testing.T) {
	k := genKey(t, "a1", AlgEdDSA)
	r, err := ParseKeyRing(" " + k.String() + " , " + genKey(t, "b2", AlgHS256).String())
	if err != nil || len(r.keys) != 2 || r.keys[0].ID != "a1" {
		t.Fatalf("ring %v %v", r, err)
	}
	for _, bad := range []string{"", "a:EdDSA", "a:RS256:AAAA", "a:EdDSA:AAAA", "a:HS256:" + strings.Repeat("A", 10), k.String() + "," + k.String(), "a:EdDSA:!!"} {
		if _, err := ParseKeyRing(bad); err == nil {
			t.Errorf("ParseKeyRing(%q) accepted", bad)
		}
	}
}
