package auth

import (
	"strings"
	"testing"
)

func TestAPIKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != KeyLen || !strings.HasPrefix(k, "cs_") || !ValidAPIKey(k) {
			t.Fatalf("bad key %q", k)
		}
		if seen[k] {
			t.Fatal("duplicate key")
		}
		seen[k] = true
		// Any one-character change breaks the checksum.
		for _, i := range []int{3, 20, len(k) - 1} {
			b := []byte(k)
			if b[i] == 'x' {
				b[i] = 'y'
			} else {
				b[i] = 'x'
			}
			if ValidAPIKey(string(b)) {
				t.Fatalf("mutated key %q passes", b)
			}
		}
		prefix, last := KeyDisplay(k)
		if !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, last) || strings.Contains(MaskKey(prefix, last), k[10:40]) {
			t.Fatalf("display %q %q", prefix, last)
		}
	}
	for _, bad := range []string{"", "cs_", "cs_" + strings.Repeat("A", 46), "xx_" + strings.Repeat("A", 46), "cs_" + strings.Repeat("-", 46)} {
		if ValidAPIKey(bad) {
			t.Errorf("ValidAPIKey(%q)", bad)
		}
	}
	if HashAPIKey("a") == HashAPIKey("b") || len(HashAPIKey("a")) != 64 {
		t.Fatal("hash")
	}
}

func TestSealer(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 1
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("gho_secret", "user_1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "gho_secret") {
		t.Fatal("plaintext visible")
	}
	if got, err := s.Open(sealed, "user_1"); err != nil || got != "gho_secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open(sealed, "user_2"); err == nil {
		t.Fatal("opened for another owner")
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-2] ^= 1
	if _, err := s.Open(string(tampered), "user_1"); err == nil {
		t.Fatal("tampered value opened")
	}
	key[0] = 2
	other, _ := NewSealer(key)
	if _, err := other.Open(sealed, "user_1"); err != ErrSealedByOtherKey {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Fatal("short key accepted")
	}
}
