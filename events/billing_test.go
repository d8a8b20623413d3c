package events

import "testing"

func TestChargeCentsRounding(t *testing.T) {
	cases := []struct {
		seconds float64
		cpm     int64
		want    int64
	}{
		{0, 10, 0},
		{1, 10, 1},   // 10/60 of a cent rounds up to 1
		{59, 10, 10}, // 9.83 -> 10
		{60, 10, 10},
		{61, 10, 11}, // 10.17 -> 11
		{60, 1, 1},
		{61, 1, 2},
		{59, 1, 1},
		{1, 1, 1},
		{0.000001, 1, 1},
		{0.3, 200, 1}, // 1.0 exactly, not 2 through a float residue
		{3600, 10, 600},
		{24 * 3600, 7, 10080},
		{30 * 24 * 3600, 25, 1080000},
		{-5, 10, 0},
		{100, 0, 0},
	}
	for _, c := range cases {
		if got := ChargeCents(c.seconds, c.cpm); got != c.want {
			t.Errorf("ChargeCents(%v, %d) = %d, want %d", c.seconds, c.cpm, got, c.want)
		}
	}
}

// TestSpent: a balance is spent once the accrued usage reaches it, not before.
func TestSpent(t *testing.T) {
	if !Spent(0, 0) || Spent(1, 0) || !Spent(10, 11) || !Spent(10, 10) {
		t.Fatal("Spent")
	}
}
