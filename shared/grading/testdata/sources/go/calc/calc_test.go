package calc

import "testing"

func TestAdd(t *testing.T) {
	cases := []struct {
		name       string
		a, b, want int
	}{
		{"zero", 0, 0, 0},
		{"positive", 2, 3, 5},
		{"wrong on purpose", 2, 2, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Add(c.a, c.b); got != c.want {
				t.Errorf("Add(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
			}
		})
	}
}

func TestSkipped(t *testing.T) { t.Skip("not on this platform") }

func TestPasses(t *testing.T) { t.Log("all good") }
