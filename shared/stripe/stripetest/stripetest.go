// Package stripetest gives tests a stripe-mock to talk to: the one scripts/test.sh started
// (STRIPE_MOCK_URL), or one started here from ./bin/tools/stripe-mock (installed by
// scripts/install-stripe-mock.sh). Without either the test is skipped, except under CI=true,
// where a missing stripe-mock is a failure.
package stripetest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// URL returns the base URL of a running stripe-mock.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("STRIPE_MOCK_URL"); u != "" {
		return u
	}
	bin := findBinary()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("stripe-mock is required under CI=true: run scripts/install-stripe-mock.sh or set STRIPE_MOCK_URL")
		}
		t.Skip("stripe-mock not installed (scripts/install-stripe-mock.sh) and STRIPE_MOCK_URL unset")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// An explicit HTTPS address on a free port: by default stripe-mock also takes :12112, and a
	// second stripe-mock on the machine would then fail to start.
	cmd := exec.Command(bin, "-http-addr", addr, "-https-addr", "127.0.0.1:")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	u := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		req, _ := http.NewRequest(http.MethodGet, u+"/v1/customers", nil)
		req.SetBasicAuth("sk_test_123", "")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(fmt.Sprintf("stripe-mock did not answer on %s", addr))
	return ""
}

// findBinary looks for bin/tools/stripe-mock in the working directory and its parents (tests
// run in their package's directory).
func findBinary() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "bin", "tools", "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
