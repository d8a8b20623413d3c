package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/changes"
)

// Verifier output is the report itself for `go test -json` and pytest -rA, so it gets a far
// larger cap than an interactive command; the agent's answer must still fit an HTTP response.
const (
	verifyOutputLimit = 8 << 20
	reportsLimit      = 16 << 20
	defaultVerifyTime = 1800 * time.Second
)

// runVerify runs the oracle in the agent's work tree, which must be a fresh copy of the
// pristine environment (an oracle sandbox, never a session's): what the grader depends on is
// read from the pristine tree first (the test patch's files, the verifier's own files, the
// report paths, .git, the sample's protected globs); then the agent's changes are applied but
// for those to protected paths, the test patch is applied, the verifier runs with its timeout,
// every process it left is killed, and the reports are read without following symlinks.
func (s *Server) runVerify(ctx context.Context, req sandbox.VerifyRequest, layer io.Reader) (sandbox.VerifyResult, error) {
	if strings.TrimSpace(req.Command) == "" {
		return sandbox.VerifyResult{}, &rejection{msg: "the verifier command is empty"}
	}
	for _, p := range req.Protected {
		if err := changes.ValidPattern(p); err != nil {
			return sandbox.VerifyResult{}, &rejection{msg: fmt.Sprintf("protected path %q: %v", p, err)}
		}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = defaultVerifyTime
	}
	var patchPaths []string
	if strings.TrimSpace(req.TestPatch) != "" {
		var err error
		if patchPaths, err = s.patchPaths(ctx, req.TestPatch); err != nil {
			return sandbox.VerifyResult{}, err
		}
	}
	protected := s.protection(req, patchPaths)
	res := sandbox.VerifyResult{Reports: map[string]string{}, IgnoredChanges: []string{}}
	if layer != nil {
		applied, err := changes.Apply(layer, s.workDir, protected)
		if err != nil {
			return sandbox.VerifyResult{}, &rejection{sandbox.RejectChanges, "the agent's changes cannot be applied: " + err.Error()}
		}
		res.IgnoredChanges = summarizeIgnored(applied.Ignored)
	}
	// A report in the pristine tree must not be graded as this run's.
	for _, p := range req.ReportPaths {
		s.removeReports(p)
	}
	if len(patchPaths) > 0 {
		if _, err := s.git(ctx, req.TestPatch, "apply", "--whitespace=nowarn", "-"); err != nil {
			return sandbox.VerifyResult{}, &rejection{sandbox.RejectTestPatch, "the test patch does not apply to the base commit: " + err.Error()}
		}
	}

	run := s.run(ctx, s.workDir, req.Command, timeout, verifyOutputLimit)
	// Nothing the verifier started may write a report after it ended: the oracle's agent is
	// its own subreaper, so every process the verifier left is its child by now.
	endChildren()
	res.ExitCode, res.Stdout, res.Stderr = run.ExitCode, run.Stdout, run.Stderr
	res.Duration, res.TimedOut = run.Duration, run.TimedOut
	notes := []string{}
	if run.Message != "" {
		notes = append(notes, run.Message)
	}
	budget := reportsLimit
	for _, rel := range s.reportFiles(req.ReportPaths) {
		data, err := s.readReport(rel, budget)
		if err != nil {
			notes = append(notes, fmt.Sprintf("report %s unreadable: %v", rel, err))
			continue
		}
		if len(data) > budget {
			notes = append(notes, fmt.Sprintf("report %s truncated to %d bytes", rel, budget))
			data = data[:budget]
		}
		budget -= len(data)
		res.Reports[rel] = string(data)
	}
	res.Message = strings.Join(notes, "; ")
	return res, nil
}

// maxIgnoredListed caps the ignored changes listed in a result; the rest are counted.
const maxIgnoredListed = 100

// summarizeIgnored caps the list of ignored changes so a result stays small.
func summarizeIgnored(paths []string) []string {
	if len(paths) <= maxIgnoredListed {
		return append([]string{}, paths...)
	}
	out := append([]string{}, paths[:maxIgnoredListed]...)
	return append(out, fmt.Sprintf("... and %d more", len(paths)-maxIgnoredListed))
}

// protection says which paths the agent's changes may not touch: the sample's globs, the test
// patch's files, the verifier's own files (the words of its command that name a file or
// directory of the pristine tree), the report paths and the repository's .git. It is computed
// before any change lands, so the agent cannot make a path look like something else.
func (s *Server) protection(req sandbox.VerifyRequest, patchPaths []string) func(string) bool {
	exact := map[string]bool{".git": true}
	for _, p := range patchPaths {
		exact[path.Clean(p)] = true
	}
	for _, word := range strings.Fields(req.Command) {
		word = strings.Trim(word, `"'`)
		if i := strings.IndexByte(word, '='); i >= 0 {
			word = word[i+1:] // --junitxml=reports/x.xml, PYTHONPATH=src
		}
		if word == "" || strings.HasPrefix(word, "-") {
			continue
		}
		rel := filepath.Clean(word)
		if filepath.IsAbs(rel) {
			r, err := filepath.Rel(s.workDir, rel)
			if err != nil {
				continue
			}
			rel = r
		}
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(s.workDir, rel)); err == nil {
			exact[filepath.ToSlash(rel)] = true
		}
	}
	// Report paths may be globs (target/surefire-reports/*.xml). One that is no usable pattern
	// would protect everything (Patterns.Match): it protects nothing more than itself.
	globs := changes.Patterns(append([]string{}, req.Protected...))
	for _, rp := range req.ReportPaths {
		if p := path.Clean(filepath.ToSlash(rp)); changes.ValidPattern(p) == nil {
			globs = append(globs, p)
		} else {
			exact[p] = true
		}
	}
	return func(rel string) bool {
		// A path is protected when it or a directory above it is.
		for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			if exact[p] {
				return true
			}
		}
		return globs.Match(rel)
	}
}

// removeReports removes the files a report path (a glob) names in the tree, without following
// symlinks.
func (s *Server) removeReports(pattern string) {
	matches, err := filepath.Glob(s.resolve(pattern))
	if err != nil {
		return
	}
	for _, m := range matches {
		if rel, ok := s.inside(m); ok {
			if st, err := os.Lstat(m); err == nil && !st.IsDir() {
				os.Remove(filepath.Join(s.workDir, rel))
			}
		}
	}
}

// patchPaths lists every path the patch touches (both sides of a rename), as git reads it.
func (s *Server) patchPaths(ctx context.Context, patch string) ([]string, error) {
	out, err := s.git(ctx, patch, "apply", "--numstat", "-z", "-")
	if err != nil {
		return nil, &rejection{sandbox.RejectTestPatch, "the test patch cannot be read: " + err.Error()}
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
			return nil, &rejection{sandbox.RejectTestPatch, fmt.Sprintf("the test patch cannot be read: unexpected numstat record %q", rec)}
		}
		if parts[2] != "" {
			paths = append(paths, parts[2])
			continue
		}
		if i+2 >= len(fields) {
			return nil, &rejection{sandbox.RejectTestPatch, "the test patch cannot be read: truncated rename record"}
		}
		paths = append(paths, fields[i+1], fields[i+2])
		i += 2
	}
	return paths, nil
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
// the files that exist now, relative to the work dir; the verifier may have planted symlinks,
// which readReport refuses.
func (s *Server) reportFiles(patterns []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, pat := range patterns {
		matches, err := filepath.Glob(s.resolve(pat))
		if err != nil {
			continue
		}
		for _, m := range matches {
			if rel, ok := s.inside(m); ok && !seen[rel] {
				seen[rel] = true
				out = append(out, rel)
			}
		}
	}
	return out
}

// inside gives p relative to the work dir when it is inside it.
func (s *Server) inside(p string) (string, bool) {
	r, err := filepath.Rel(s.workDir, p)
	if err != nil || r == "." || r == ".." || strings.HasPrefix(r, "../") {
		return "", false
	}
	return r, true
}

// readReport reads a report, at most limit+1 bytes, refusing a path with a symlink anywhere
// under the work dir (the code under test could point a report at a file it controls) and
// anything but a regular file.
func (s *Server) readReport(rel string, limit int) ([]byte, error) {
	cur := s.workDir
	parts := strings.Split(rel, string(filepath.Separator))
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if err != nil {
			return nil, unwrapPath(err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil, errors.New("it is a symlink, or under one")
		}
		if i < len(parts)-1 && !st.IsDir() {
			return nil, errors.New("not a regular file")
		}
	}
	f, err := os.OpenFile(cur, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, int64(limit)+1))
}
