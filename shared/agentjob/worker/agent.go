package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/demo"
)

// maxFileBytes bounds one instruction file an agent's command wrote: a knowledge base, not a
// dump of the repository.
const maxFileBytes = 1 << 20

// RunAgent runs the job's agent in its work tree and returns the knowledge base: the demo's
// files, or the instruction files the command wrote or changed (agentjob.Instructions).
func RunAgent(ctx context.Context, j Job) ([]agentjob.File, error) {
	if len(j.Command) == 0 {
		k, err := demo.Scan(j.WorkDir, j.Repo)
		if err != nil {
			return nil, err
		}
		return demo.Files(k), nil
	}
	before := instructionFiles(j.WorkDir)
	if err := runCommand(ctx, j); err != nil {
		return nil, err
	}
	after := instructionFiles(j.WorkDir)
	var files []agentjob.File
	for _, p := range sortedPaths(after) {
		if old, ok := before[p]; ok && old == after[p] {
			continue // there before the agent ran, unchanged: not its work
		}
		files = append(files, agentjob.File{Path: p, AgentID: agentjob.InstructionAgent(p), Content: after[p]})
	}
	if len(files) == 0 {
		return nil, errors.New("the agent wrote no instruction file (" + instructionList() + ")")
	}
	return files, nil
}

func instructionList() string {
	var names []string
	for _, in := range agentjob.Instructions {
		if in.Dir {
			names = append(names, in.Path+"/*.mdc")
		} else {
			names = append(names, in.Path)
		}
	}
	return strings.Join(names, ", ")
}

func sortedPaths(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// instructionFiles reads every instruction file in root (regular files only: a symlink the
// agent planted could point anywhere on the machine), each cut at maxFileBytes.
func instructionFiles(root string) map[string]string {
	out := map[string]string{}
	read := func(rel string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if !regularInside(root, p) {
			return
		}
		f, err := os.Open(p)
		if err != nil {
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, maxFileBytes))
		out[rel] = string(b)
	}
	for _, in := range agentjob.Instructions {
		if !in.Dir {
			read(in.Path)
			continue
		}
		dir := filepath.Join(root, filepath.FromSlash(in.Path))
		if !dirInside(root, dir) {
			continue
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".mdc") {
				read(in.Path + "/" + e.Name())
			}
		}
	}
	return out
}

// regularInside reports whether p is a regular file reached from root through no symlink.
func regularInside(root, p string) bool {
	if !dirInside(root, filepath.Dir(p)) {
		return false
	}
	st, err := os.Lstat(p)
	return err == nil && st.Mode().IsRegular()
}

// dirInside reports whether dir is root or a directory below it, with no symlink on the way.
func dirInside(root, dir string) bool {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return false
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if err != nil || !st.IsDir() {
			return false
		}
	}
	return true
}

// runCommand runs the agent's command in the work tree with the job's limits and timeout, in a
// process group of its own that the timeout kills whole. It inherits the worker's environment
// but the secrets and URLs it has no business with.
func runCommand(ctx context.Context, j Job) error {
	if err := applyLimits(j.Limits); err != nil {
		return fmt.Errorf("agent limits: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	cmd := exec.Command(j.Command[0], j.Command[1:]...)
	cmd.Dir = j.WorkDir
	cmd.Env = withoutSecrets(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the agent %q: %w", j.Command[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left running in its group
		if err != nil {
			return fmt.Errorf("the agent %q failed: %v: %s", j.Command[0], err, out.String())
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("the agent %q did not finish within %s: %s", j.Command[0], j.Timeout, out.String())
	}
}

func withoutSecrets(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		secret := false
		for _, s := range secretEnv {
			secret = secret || k == s
		}
		if !secret {
			out = append(out, kv)
		}
	}
	return out
}

// applyLimits sets the worker's own rlimits, which the agent and everything it starts inherit.
func applyLimits(l Limits) error {
	for _, x := range []struct {
		res int
		v   int64
	}{{unix.RLIMIT_CPU, l.CPUSeconds}, {unix.RLIMIT_FSIZE, l.FileSize}, {unix.RLIMIT_NOFILE, l.OpenFiles}, {unix.RLIMIT_NPROC, l.Procs}} {
		if x.v <= 0 {
			continue
		}
		lim := unix.Rlimit{Cur: uint64(x.v), Max: uint64(x.v)}
		var old unix.Rlimit
		if err := unix.Getrlimit(x.res, &old); err == nil && old.Max < lim.Max {
			lim = unix.Rlimit{Cur: min(lim.Cur, old.Max), Max: old.Max} // never raise a limit
		}
		if err := unix.Setrlimit(x.res, &lim); err != nil {
			return err
		}
	}
	return nil
}

// tailBuffer keeps the last 2 KiB written: enough of an agent's output to say why it failed.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return "(no output)"
	}
	return s
}
