// Package sandboxtest helps tests of sandboxes: it builds the real binary once and looks at the
// process table to prove that nothing outlives a sandbox.
package sandboxtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/codeset/codeset/shared/sandbox/local"
)

// Alive reports whether pid is a live process: a zombie, already dead but not yet reaped by a
// parent that is not ours, counts as gone.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

// WaitGone waits up to d for pid to end.
func WaitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// WaitEmpty waits up to d for every process in dir (see ProcessesIn) to end, and returns those
// still there.
func WaitEmpty(dir string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		left := ProcessesIn(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends pid, for a test's own clean-up.
func Kill(pid int) {
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// ProcessesIn lists the live processes of the sandbox in dir: those whose working directory or
// command line lies in dir (its agent names it on its command line; a plain-process sandbox's
// commands run there), and every process in the pid namespace of one of those (a sandbox with
// a root of its own runs its commands at paths of its own).
func ProcessesIn(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	own, _ := os.Readlink("/proc/self/ns/pid")
	type proc struct {
		pid         int
		cwd, cl, ns string
		byPath      bool
	}
	var procs []proc
	sandboxNS := map[string]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !Alive(pid) {
			continue
		}
		p := proc{pid: pid}
		p.cwd, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		p.ns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.cl = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		p.byPath = p.cwd == dir || strings.HasPrefix(p.cwd, dir+"/") || strings.Contains(p.cl, dir) ||
			bytes.Contains(env, []byte("\x00"+local.Mark(dir)+"\x00"))
		if p.byPath && p.ns != "" && p.ns != own {
			sandboxNS[p.ns] = true
		}
		procs = append(procs, p)
	}
	var out []string
	for _, p := range procs {
		if p.byPath || sandboxNS[p.ns] {
			out = append(out, fmt.Sprintf("%d(cwd %s: %s)", p.pid, p.cwd, p.cl))
		}
	}
	return out
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Binary builds ./cmd/codeset (CGO_ENABLED=0) once per test process into a temporary directory
// and returns its path. root is the module root.
func Binary(root string) (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "codeset-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "codeset")
		cmd := exec.Command("go", "build", "-o", built, "./cmd/codeset")
		cmd.Dir = root
		// Static, as it ships: it runs inside any sample image, and without cgo the agent can
		// narrow the capabilities of all its threads at once.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/codeset: %v\n%s", err, out)
		}
	})
	return built, buildErr
}
