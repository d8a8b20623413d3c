package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/sandboxtest"
)

// TestCloudRunAgentSecretUnreadable starts the agent as a Cloud Run container does (its init
// first, the secret in the environment, no namespaces, no root of its own) and has a command
// read every environment and command line it can: the secret is in none of them, though the
// command runs as the same user as the agent (root, where the test runs as root).
func TestCloudRunAgentSecretUnreadable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the codeset binary")
	}
	root, _ := filepath.Abs("../..")
	bin, err := sandboxtest.Binary(root)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command(bin, "sandboxd", "--init", "--listen", "unix://"+sock, "--work-dir", dir)
	cmd.Env = append(os.Environ(), sandbox.SecretEnv+"="+secret)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c, err := sandbox.NewClient(sandbox.Info{URL: "unix://" + sock, Secret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.Health(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	init := cmd.Process.Pid
	res, err := c.Exec(ctx, `cat /proc/`+strconv.Itoa(init)+`/environ; echo "== init $?"; env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done`, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stdout, "== init") {
		t.Fatalf("the command did not run as planned: %+v", res)
	}
	if strings.Contains(res.Stdout+res.Stderr, secret) {
		t.Fatal("a command read the agent's secret")
	}
}
