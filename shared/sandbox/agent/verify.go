package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
)

// Verifier output is the report itself for `go test -json` and pytest -rA, so it gets a far
// larger cap than an interactive command; the agent's answer must still fit an HTTP response.
const (
	verifyOutputLimit = 8 << 20
	reportsLimit      = 16 << 20
	defaultVerifyTime = 1800 * time.Second
)

// runVerify runs the oracle: the files the test patch touches are restored to the base commit
// (so the agent's edits to the tests cannot pass it), the patch is applied, the verifier runs
// with its timeout and the reports are collected. Afterwards the touched files are put back as
// the agent left them, so verifying never changes the agent's work.
func (s *Server) runVerify(ctx context.Context, req sandbox.VerifyRequest) (sandbox.VerifyResult, error) {
	if strings.TrimSpace(req.Command) == "" {
		return sandbox.VerifyResult{}, &rejection{"the verifier command is empty"}
	}
	// One at a time: two runs would restore each other's test files midway.
	s.verifying.Lock()
	defer s.verifying.Unlock()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = defaultVerifyTime
	}
	base := req.BaseCommit
	if base == "" {
		base = "HEAD"
	}
	var paths []string
	if strings.TrimSpace(req.TestPatch) != "" {
		var err error
		if paths, err = s.patchPaths(ctx, req.TestPatch); err != nil {
			return sandbox.VerifyResult{}, err
		}
	}
	snap, err := s.snapshot(paths)
	if err != nil {
		return sandbox.VerifyResult{}, err
	}
	defer snap.restore()
	if len(paths) > 0 {
		if err := s.restoreToBase(ctx, base, paths); err != nil {
			return sandbox.VerifyResult{}, err
		}
		if _, err := s.git(ctx, req.TestPatch, "apply", "--whitespace=nowarn", "-"); err != nil {
			return sandbox.VerifyResult{}, &rejection{"the test patch does not apply to the base commit: " + err.Error()}
		}
	}
	// A report left by an earlier run (or written by the agent) must not be graded as this one.
	for _, p := range s.reportFiles(req.ReportPaths) {
		os.Remove(p)
	}

	run := s.run(ctx, s.workDir, req.Command, timeout, verifyOutputLimit)
	res := sandbox.VerifyResult{ExitCode: run.ExitCode, Stdout: run.Stdout, Stderr: run.Stderr,
		Duration: run.Duration, TimedOut: run.TimedOut, Reports: map[string]string{}}
	notes := []string{}
	if run.Message != "" {
		notes = append(notes, run.Message)
	}
	budget := reportsLimit
	for _, p := range s.reportFiles(req.ReportPaths) {
		data, err := os.ReadFile(p)
		if err != nil {
			notes = append(notes, fmt.Sprintf("report %s unreadable: %v", s.rel(p), unwrapPath(err)))
			continue
		}
		if len(data) > budget {
			notes = append(notes, fmt.Sprintf("report %s truncated to %d of %d bytes", s.rel(p), budget, len(data)))
			data = data[:budget]
		}
		budget -= len(data)
		res.Reports[s.rel(p)] = string(data)
	}
	res.Message = strings.Join(notes, "; ")
	return res, nil
}

// patchPaths lists every path the patch touches (both sides of a rename), as git reads it.
func (s *Server) patchPaths(ctx context.Context, patch string) ([]string, error) {
	out, err := s.git(ctx, patch, "apply", "--numstat", "-z", "-")
	if err != nil {
		return nil, &rejection{"the test patch cannot be read: " + err.Error()}
	}
	// Each record is "added\tdeleted\tpath\0", or for a rename "added\tdeleted\t\0old\0new\0".
	var paths []string
	fields := strings.Split(out, "\x00")
	for i := 0; i < len(fields); i++ {
		rec := fields[i]
		if rec == "" {
			continue
		}
		parts := strings.SplitN(rec, "\t", 3)
		if len(parts) != 3 {
			return nil, &rejection{fmt.Sprintf("the test patch cannot be read: unexpected numstat record %q", rec)}
		}
		if parts[2] != "" {
			paths = append(paths, parts[2])
			continue
		}
		if i+2 >= len(fields) {
			return nil, &rejection{"the test patch cannot be read: truncated rename record"}
		}
		paths = append(paths, fields[i+1], fields[i+2])
		i += 2
	}
	return paths, nil
}

// restoreToBase puts each path as it is at base: checked out when base has it, removed when
// the patch creates it.
func (s *Server) restoreToBase(ctx context.Context, base string, paths []string) error {
	if _, err := s.git(ctx, "", "rev-parse", "--verify", "--quiet", base+"^{commit}"); err != nil {
		return &rejection{fmt.Sprintf("base commit %s is not in the work tree's repository", base)}
	}
	out, err := s.git(ctx, "", append([]string{"ls-tree", "-r", "-z", "--name-only", base, "--"}, paths...)...)
	if err != nil {
		return &rejection{"cannot list the test files at the base commit: " + err.Error()}
	}
	atBase := map[string]bool{}
	var existing []string
	for _, p := range strings.Split(out, "\x00") {
		if p != "" {
			atBase[p] = true
			existing = append(existing, p)
		}
	}
	if len(existing) > 0 {
		// restore --worktree leaves the index (what the agent staged) alone; git before 2.23
		// has only checkout, which also stages the base version.
		_, err := s.git(ctx, "", append([]string{"restore", "--source=" + base, "--worktree", "--"}, existing...)...)
		if err != nil && strings.Contains(err.Error(), "is not a git command") {
			_, err = s.git(ctx, "", append([]string{"checkout", base, "--"}, existing...)...)
		}
		if err != nil {
			return &rejection{"cannot restore the test files to the base commit: " + err.Error()}
		}
	}
	for _, p := range paths {
		if !atBase[p] {
			if err := os.RemoveAll(s.resolve(p)); err != nil {
				return fmt.Errorf("remove %s before applying the test patch: %w", p, err)
			}
		}
	}
	return nil
}

// git runs one git command in the work dir with stdin, hooks off and any owner accepted (an
// image's repository may belong to another user than the agent).
func (s *Server) git(ctx context.Context, stdin string, args ...string) (string, error) {
	args = append([]string{"-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*"}, args...)
	// Through the confinement's prefix too: a repository's config can make git run programs.
	cmd := s.command(ctx, "git", args...)
	cmd.Dir = s.workDir
	cmd.Env = append(s.env, "GIT_TERMINAL_PROMPT=0")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := startCommand(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", errors.New(msg)
	}
	return stdout.String(), nil
}

// reportFiles expands the report paths (globs allowed, e.g. target/surefire-reports/*.xml) to
// the regular files that exist now.
func (s *Server) reportFiles(patterns []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, pat := range patterns {
		matches, err := filepath.Glob(s.resolve(pat))
		if err != nil {
			continue
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// rel names a file relative to the work dir when it is inside it.
func (s *Server) rel(p string) string {
	if r, err := filepath.Rel(s.workDir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// snapshot remembers the agent's version of each path so verification can put it back.
type snapshot struct {
	entries []entry
}

type entry struct {
	abs    string
	exists bool
	mode   fs.FileMode
	data   []byte
	link   string
}

func (s *Server) snapshot(paths []string) (*snapshot, error) {
	snap := &snapshot{}
	for _, p := range paths {
		e := entry{abs: s.resolve(p)}
		st, err := os.Lstat(e.abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("snapshot %s: %w", p, err)
		case st.Mode()&fs.ModeSymlink != 0:
			e.exists, e.mode = true, st.Mode()
			if e.link, err = os.Readlink(e.abs); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", p, err)
			}
		case st.Mode().IsRegular():
			e.exists, e.mode = true, st.Mode()
			if e.data, err = os.ReadFile(e.abs); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", p, err)
			}
		default:
			// A directory where the patch expects a file: git apply will refuse; leave it be.
			continue
		}
		snap.entries = append(snap.entries, e)
	}
	return snap, nil
}

// restore puts every path back as the snapshot saw it. It is best effort: a path that cannot
// be restored is left as the verification made it.
func (snap *snapshot) restore() {
	for _, e := range snap.entries {
		os.RemoveAll(e.abs)
		if !e.exists {
			continue
		}
		os.MkdirAll(filepath.Dir(e.abs), 0o755)
		if e.mode&fs.ModeSymlink != 0 {
			os.Symlink(e.link, e.abs)
			continue
		}
		if err := os.WriteFile(e.abs, e.data, e.mode.Perm()); err == nil {
			os.Chmod(e.abs, e.mode.Perm()) // WriteFile's perm is filtered by the umask
		}
	}
}
