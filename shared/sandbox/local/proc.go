package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// stat reads a process's state and parent from /proc/<pid>/stat.
func stat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold anything, so parse after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// running reports whether pid is a live process; a zombie is dead already.
func running(pid int) bool {
	st, _, ok := stat(pid)
	return ok && st != 'Z' && st != 'X'
}

// anyRunning reports whether any of the processes is still alive.
func anyRunning(pids map[int]bool) bool {
	for p := range pids {
		if running(p) {
			return true
		}
	}
	return false
}

// descendants is pid and every process below it in the process tree.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := stat(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func hexHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// killStragglers kills every process whose working directory lies in dir.
func killStragglers(dir string) {
	killWhere(func(pid int) bool {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		return err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/"))
	})
}

// killMarked kills every process that carries the mark of the sandbox in dir: in namespaces
// its processes' working directories are not the host's path, but their environment keeps
// the mark (see Mark).
func killMarked(dir string) {
	mark := []byte("\x00" + Mark(dir) + "\x00")
	killWhere(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return err == nil && bytes.Contains(append([]byte{0}, b...), mark)
	})
}

// killWhere kills every process of the host but this one that match says to.
func killWhere(match func(pid int) bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err == nil && p != os.Getpid() && match(p) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}
