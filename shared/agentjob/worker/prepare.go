package worker

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox/envarchive"
)

// gitSafety are the settings every git command here runs with: a repository is input, and its
// own configuration and hooks (an archive carries .git/config and .git/hooks) must run nothing.
var gitSafety = []string{"-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never",
	"-c", "advice.detachedHead=false"}

// git runs git with args in dir; extraEnv carries what must not be on a command line (the
// token). Its output, in an error, is scrubbed of secret.
func git(ctx context.Context, dir string, extraEnv []string, secret string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{}, gitSafety...), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=/bin/false")
	cmd.Env = append(cmd.Env, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if secret != "" {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	if err != nil {
		return text, fmt.Errorf("git %s: %v: %s", args[0], err, text)
	}
	return text, nil
}

// tokenEnv hands git the token as an HTTP header through the environment (GIT_CONFIG_*), never
// on a command line, in a URL or in a file: GitHub takes a token as basic auth with any user.
func tokenEnv(token string) []string {
	if token == "" {
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic " + basic}
}

// Prepare puts the repository of src at ref into dest (which must not exist yet): a shallow
// fetch of GitURL, a clone of the repository in Dir, or the environment archive read from
// blobs (locally) or downloaded from archiveURL (in a runner image).
func Prepare(ctx context.Context, src agentjob.Source, ref string, blobs blob.Store, archiveURL string, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return err
	}
	switch {
	case src.GitURL != "":
		return fetchGit(ctx, src.GitURL, src.Token, ref, dest)
	case src.Dir != "":
		return cloneDir(ctx, src.Dir, ref, dest)
	case src.Archive != nil && archiveURL != "":
		if err := envarchive.Fetch(ctx, http.DefaultClient, archiveURL, *src.Archive, dest); err != nil {
			return err
		}
		return checkout(ctx, dest, ref, "the environment archive")
	case src.Archive != nil && blobs != nil:
		if err := unpackBlob(ctx, blobs, *src.Archive, dest); err != nil {
			return err
		}
		return checkout(ctx, dest, ref, "the environment archive")
	}
	return errors.New("agent job: the source names no repository (git URL, directory or archive)")
}

// fetchGit fetches only the commit asked for (a branch, a tag or a commit id; HEAD when ref is
// empty): a knowledge base needs the tree, not the history.
func fetchGit(ctx context.Context, url, token, ref, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	if _, err := git(ctx, dest, nil, "", "init", "-q"); err != nil {
		return err
	}
	if ref == "" {
		ref = "HEAD"
	}
	env := append(tokenEnv(token), "GIT_ALLOW_PROTOCOL=https:http:file")
	if _, err := git(ctx, dest, env, token, "fetch", "-q", "--depth", "1", "--no-tags", "--", url, ref); err != nil {
		return fmt.Errorf("fetch %s at %s: %w", redactURL(url), ref, err)
	}
	_, err := git(ctx, dest, nil, "", "checkout", "-q", "--detach", "FETCH_HEAD")
	return err
}

// cloneDir copies a local repository (no hard links: the agent must not be able to change the
// original's objects) and checks out ref.
func cloneDir(ctx context.Context, dir, ref, dest string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := git(ctx, filepath.Dir(dest), nil, "", "-c", "safe.directory="+abs, "clone", "-q", "--no-hardlinks", "--no-checkout", "--", abs, dest); err != nil {
		return fmt.Errorf("clone %s: %w", dir, err)
	}
	if ref == "" {
		ref = "HEAD"
	}
	return checkout(ctx, dest, ref, dir)
}

// checkout moves the work tree in dest to ref (a commit, tag, branch or a branch of origin);
// an empty ref keeps what is there.
func checkout(ctx context.Context, dest, ref, what string) error {
	if ref == "" {
		return nil
	}
	if strings.HasPrefix(ref, "-") {
		return fmt.Errorf("ref %q is not a ref", ref)
	}
	for _, cand := range []string{ref, "origin/" + ref} {
		commit, err := git(ctx, dest, nil, "", "rev-parse", "--verify", "-q", cand+"^{commit}")
		if err != nil || commit == "" {
			continue
		}
		_, err = git(ctx, dest, nil, "", "checkout", "-q", "-f", "--detach", commit)
		return err
	}
	return fmt.Errorf("ref %q is not in %s", ref, what)
}

// unpackBlob unpacks the archive ref of blobs at dest, checking its bytes against the digest.
func unpackBlob(ctx context.Context, blobs blob.Store, ref blob.Ref, dest string) error {
	rc, err := blobs.Get(ctx, ref)
	if err != nil {
		return fmt.Errorf("environment archive %s: %w", ref.Digest, err)
	}
	body := blob.Checked(rc, ref)
	defer body.Close()
	staging, err := os.MkdirTemp(filepath.Dir(dest), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := envarchive.Unpack(body, ref.Digest, staging); err != nil {
		return err
	}
	// The tar ends before its gzip stream does: the digest covers every byte.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return fmt.Errorf("environment archive %s: %w", ref.Digest, err)
	}
	return os.Rename(envarchive.WorkTree(staging), dest)
}

// Commit is the commit checked out in dir, or "" when dir is not a git work tree.
func Commit(ctx context.Context, dir string) string {
	out, err := git(ctx, dir, nil, "", "-c", "safe.directory="+dir, "rev-parse", "--verify", "-q", "HEAD^{commit}")
	if err != nil {
		return ""
	}
	return out
}
