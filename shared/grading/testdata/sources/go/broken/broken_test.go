package broken

import "testing"

func TestSub(t *testing.T) {
	if Sub(3, 1) != 2 {
		t.Fatal("bad")
	}
	undefinedHelper()
}
