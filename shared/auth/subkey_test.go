package auth

import (
	"bytes"
	"testing"
)

func TestSubkey(t *testing.T) {
	t.Parallel()
	old, _ := GenerateKey("old", AlgEdDSA)
	cur, _ := GenerateKey("cur", AlgHS256)
	ring, err := NewKeyRing(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	kid, a := ring.Subkey("a")
	if kid != "cur" || len(a) != 32 {
		t.Fatalf("kid %q, %d bytes", kid, len(a))
	}
	if bytes.Equal(a, cur.Secret) || bytes.Contains(a, cur.Secret[:8]) {
		t.Fatal("the subkey is the JWT key")
	}
	if _, b := ring.Subkey("b"); bytes.Equal(a, b) {
		t.Fatal("two labels, one subkey")
	}
	// After a rotation the old key still derives the subkeys it derived.
	rotated, _ := NewKeyRing(old, cur)
	if again, ok := rotated.SubkeyOf("cur", "a"); !ok || !bytes.Equal(again, a) {
		t.Fatal("the rotated ring derives another subkey")
	}
	if _, ok := rotated.SubkeyOf("gone", "a"); ok {
		t.Fatal("a subkey of a key the ring does not list")
	}
}
