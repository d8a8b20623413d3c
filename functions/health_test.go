package functions

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/codeset/codeset/app"
)

// TestHealthSaysStartingUntilTheStartupTasksEnd: whoever waits for a 200 from health and then
// reads the bootstrap key or lists the demo dataset must find them.
func TestHealthSaysStartingUntilTheStartupTasksEnd(t *testing.T) {
	t.Parallel()
	ta := openApp(t, appSpec{})
	a := ta.App
	release, entered := make(chan struct{}), make(chan struct{})
	a.Wiring.Startup = []app.Task{{Name: "slow", Run: func(ctx context.Context, _ *app.App) error {
		close(entered)
		<-release
		return nil
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() {
		_, err := a.Start(ctx)
		started <- err
	}()
	health := func() (int, string) {
		w := httptest.NewRecorder()
		if err := HealthCheck(a, w, httptest.NewRequest("GET", "/api/v1/health", nil)); err != nil {
			t.Fatal(err)
		}
		var h health
		json.Unmarshal(w.Body.Bytes(), &h)
		return w.Code, h.Status
	}
	<-entered
	if code, status := health(); code != http.StatusServiceUnavailable || status != "starting" {
		t.Fatalf("during the startup tasks: %d %q, want 503 starting", code, status)
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if code, status := health(); code != http.StatusOK || status != "healthy" {
		t.Fatalf("after the startup tasks: %d %q, want 200 healthy", code, status)
	}
}
