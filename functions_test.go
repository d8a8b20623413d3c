package codeset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/functions"
)

// TestMain doubles as a Cloud Functions process: with CODESET_FF_CHILD set it serves
// FUNCTION_TARGET from this package's registrations, as the platform does.
func TestMain(m *testing.M) {
	if port := os.Getenv("CODESET_FF_CHILD"); port != "" {
		if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestConsumerFunctions: every consumer is a function under its name (its Pub/Sub push
// endpoint): it takes push deliveries at "/", acknowledges one it can never handle (an event
// that is not in the store) and refuses other methods.
func TestConsumerFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	if len(functions.Wiring().Consumers) == 0 {
		t.Fatal("no consumers registered")
	}
	for _, c := range functions.Wiring().Consumers {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			base := startFunction(t, c.Name)
			e := events.Envelope{ID: "nope", Stream: "session-nope", Version: 1, Type: "session.requested", OccurredAt: time.Now(), Data: json.RawMessage(`{}`)}
			data, _ := json.Marshal(e)
			body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": data, "messageId": "1"}, "subscription": "projects/p/subscriptions/" + c.Name})
			resp, err := http.Post(base+"/", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("push of an event not in the store: %d, want 204", resp.StatusCode)
			}
			resp, err = http.Get(base + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("GET: %d, want 405", resp.StatusCode)
			}
		})
	}
}

// startFunction runs this test binary as a Cloud Function process serving target on the
// embedded backend in a fresh data dir.
func startFunction(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CODESET_FF_CHILD="+port, "FUNCTION_TARGET="+target,
		"CODESET_DATA_DIR="+t.TempDir(), "CODESET_BACKEND=embedded", "CODESET_LOG_LEVEL=error", "CODESET_NO_DEMO=true")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return "http://127.0.0.1:" + port
		}
	}
	t.Fatalf("function %s did not listen", target)
	return ""
}

func get(t *testing.T, method, url string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	json.Unmarshal(raw, &body)
	return resp.StatusCode, body
}

// TestFunctionTarget: each route is a function under its name that serves its operation only.
func TestFunctionTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	t.Parallel()
	t.Run("HealthCheck serves health at /", func(t *testing.T) {
		t.Parallel()
		base := startFunction(t, "HealthCheck")
		for _, path := range []string{"/", "/api/v1/health", "/health"} {
			code, body := get(t, http.MethodGet, base+path)
			if code != http.StatusOK || body["status"] != "healthy" {
				t.Errorf("GET %s: %d %v", path, code, body)
			}
		}
		if code, _ := get(t, http.MethodGet, base+"/api/v1/sessions"); code != http.StatusNotFound {
			t.Errorf("HealthCheck also served /api/v1/sessions: %d", code)
		}
	})
	t.Run("GetSession serves only its operation", func(t *testing.T) {
		t.Parallel()
		base := startFunction(t, "GetSession")
		// Reached (the auth layer answers), not routed elsewhere.
		if code, body := get(t, http.MethodGet, base+"/api/v1/sessions/abc"); code != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/sessions/abc: %d %v", code, body)
		}
		if code, _ := get(t, http.MethodGet, base+"/api/v1/health"); code != http.StatusNotFound {
			t.Errorf("GetSession also served health: %d", code)
		}
	})
}

// TestJobFunctions: every scheduled job is a function under its name (a Cloud Scheduler
// target) that makes one pass per POST and answers its result.
func TestJobFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	t.Parallel()
	for _, j := range functions.Wiring().Jobs {
		t.Run(j.Name, func(t *testing.T) {
			t.Parallel()
			base := startFunction(t, j.Name)
			if code, body := get(t, http.MethodPost, base+"/"); code != http.StatusOK || body == nil {
				t.Fatalf("POST: %d %v", code, body)
			}
			if code, _ := get(t, http.MethodGet, base+"/"); code != http.StatusMethodNotAllowed {
				t.Fatalf("GET: %d, want 405", code)
			}
		})
	}
}

// TestFunctionStopsOnSIGTERM: told to stop, a function process closes its App (writing out what
// it buffers) and exits cleanly, rather than dying of the signal.
func TestFunctionStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CODESET_FF_CHILD="+port, "FUNCTION_TARGET=HealthCheck",
		"CODESET_DATA_DIR="+t.TempDir(), "CODESET_BACKEND=embedded", "CODESET_LOG_LEVEL=error", "CODESET_NO_DEMO=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// Its App built by a first request.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the function did not answer")
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want a clean exit", err)
	}
}
