package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/dataset"
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

// TestCloudRunAgentUnpacksItsArchive starts the agent as the base image runs on Cloud Run (its
// init first, the archive's signed URL, digest and size in the environment): it downloads the
// archive, checks it and serves its work tree; its commands do not see the URL. With bytes that
// are not the digest's it serves nothing and leaves no tree.
func TestCloudRunAgentUnpacksItsArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the codeset binary")
	}
	root, _ := filepath.Abs("../..")
	bin, err := sandboxtest.Binary(root)
	if err != nil {
		t.Fatal(err)
	}
	// A work tree at its commit, packed as the importer packs one.
	src := filepath.Join(t.TempDir(), "tree")
	if _, err := dataset.BuildRepo(context.Background(), map[string][]byte{"calc.py": []byte("def add(a, b): return a - b\n")}, filepath.Join(src, "repo")); err != nil {
		t.Fatal(err)
	}
	packed := filepath.Join(t.TempDir(), "env.tar.gz")
	if err := dataset.WriteArchive(src, packed); err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(packed)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := blob.PutBytes(context.Background(), discardStore{}, archive)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(archive) }))
	defer srv.Close()
	signed := srv.URL + "/sha256/x?X-Goog-Signature=0123abcd"

	start := func(t *testing.T, digest string) (*exec.Cmd, string, string, *strings.Builder) {
		dir := t.TempDir()
		sock, wd := filepath.Join(dir, "agent.sock"), filepath.Join(dir, "workspace", "repo")
		cmd := exec.Command(bin, "sandboxd", "--init", "--listen", "unix://"+sock, "--work-dir", wd)
		cmd.Env = append(os.Environ(), sandbox.SecretEnv+"=s3cret", sandbox.ArchiveURLEnv+"="+signed,
			sandbox.ArchiveDigestEnv+"="+digest, sandbox.ArchiveSizeEnv+"="+strconv.FormatInt(ref.Size, 10))
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, sock, wd, &stderr
	}

	t.Run("served", func(t *testing.T) {
		_, sock, wd, stderr := start(t, ref.Digest)
		c, err := sandbox.NewClient(sandbox.Info{URL: "unix://" + sock, Secret: "s3cret"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := c.Health(ctx); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent never answered: %s", stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		res, err := c.Exec(ctx, `pwd; cat calc.py; git status --porcelain; echo "== clean"; env; tr '\0' ' ' < /proc/$PPID/cmdline`, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Stdout, wd+"\ndef add(a, b): return a - b\n== clean\n") {
			t.Fatalf("the work tree: %+v", res)
		}
		if strings.Contains(res.Stdout, "X-Goog-Signature") || strings.Contains(res.Stdout, "ARCHIVE") {
			t.Errorf("a command sees the archive's URL: %s", res.Stdout)
		}
	})
	t.Run("other bytes", func(t *testing.T) {
		cmd, _, wd, stderr := start(t, "sha256:"+strings.Repeat("ab", 32))
		err := cmd.Wait()
		if err == nil || !strings.Contains(stderr.String(), "do not match their digest") {
			t.Fatalf("the agent with a wrong digest: %v: %s", err, stderr)
		}
		if strings.Contains(stderr.String(), "0123abcd") {
			t.Errorf("the log shows the URL's signature: %s", stderr)
		}
		if _, err := os.Stat(wd); !os.IsNotExist(err) {
			t.Errorf("a work tree was left: %v", err)
		}
	})
}

// discardStore computes a Ref and keeps nothing.
type discardStore struct{ blob.Store }

func (discardStore) Put(ctx context.Context, r io.Reader) (blob.Ref, error) {
	h := blob.NewHashing(r)
	_, err := io.Copy(io.Discard, h)
	return h.Ref(), err
}
