package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/config"
)

// TestOpenRefusesADeliveryWaitPastTheAckDeadline: a delivery that waits for a command longer
// than Pub/Sub gives it would be delivered again while it waits; the backend refuses to start
// so configured rather than run every long command's wait twice.
func TestOpenRefusesADeliveryWaitPastTheAckDeadline(t *testing.T) {
	cases := []struct {
		name string
		tune func(*config.Config)
		want string
	}{
		{"no wait", func(c *config.Config) { c.DeliveryWait = 0 }, "--delivery-wait must be above 0"},
		{"past the deadline", func(c *config.Config) {
			c.Backend, c.ConsumerBase, c.AckDeadline, c.DeliveryWait = "gcp", "http://127.0.0.1:1", 60*time.Second, 45*time.Second
		}, "must stay 30s under the push subscriptions' --ack-deadline (1m0s)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			c.tune(&cfg)
			a, err := Open(context.Background(), cfg, Wiring{})
			if err == nil {
				a.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to say %q", err, c.want)
			}
		})
	}
}
