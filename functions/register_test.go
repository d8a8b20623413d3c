package functions

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

// TestMain doubles as the child process of TestFunctionTarget: with CODESET_FF_CHILD set it is a
// Cloud Functions process serving FUNCTION_TARGET, exactly as the platform runs it.
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// startFunction runs this test binary as a Cloud Function process serving target.
func startFunction(t *testing.T, target string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CODESET_FF_CHILD="+port, "FUNCTION_TARGET="+target,
		"CODESET_DATA_DIR="+t.TempDir(), "CODESET_BACKEND=embedded", "CODESET_LOG_LEVEL=error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return base
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
