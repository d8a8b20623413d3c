package local

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// firstPassed is the descriptor number of the first file a sandbox's first process inherits:
// after stdin, stdout and stderr.
const firstPassed = 3

// passed collects what a sandbox in namespaces gets from the host as inherited descriptors rather
// than as paths: its agent's arguments (which name the host's paths), the codeset binary, and
// the host directories it mounts. Inside, each is /proc/self/fd/N, so no host path is on the
// sandbox's command lines or in its mount table (/proc/self/mountinfo shows the overlays'
// options as given).
type passed struct {
	files []*os.File
}

// path opens the host path p (without following it into a writable place of the sandbox: it is
// the runtime's own) and returns the name the sandbox's first process will know it by.
func (p *passed) path(hostPath string) (string, error) {
	f, err := os.OpenFile(hostPath, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	return p.add(f), nil
}

// paths is path for each of hostPaths, joined by sep.
func (p *passed) paths(sep string, hostPaths ...string) (string, error) {
	names := make([]string, len(hostPaths))
	for i, h := range hostPaths {
		n, err := p.path(h)
		if err != nil {
			return "", err
		}
		names[i] = n
	}
	return strings.Join(names, sep), nil
}

func (p *passed) add(f *os.File) string {
	p.files = append(p.files, f)
	return fmt.Sprintf("/proc/self/fd/%d", firstPassed+len(p.files)-1)
}

// args passes a program's arguments in a memory file (the program reads them with
// `--args-fd N`), and returns that flag.
func (p *passed) args(args []string) ([]string, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("sandbox-args", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("arguments of the sandbox: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sandbox-args")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, err
	}
	p.files = append(p.files, f)
	return []string{"--args-fd", fmt.Sprint(firstPassed + len(p.files) - 1)}, nil
}

// file passes the file at hostPath open for reading (a request the sandbox reads once).
func (p *passed) file(hostPath string) (string, error) {
	f, err := os.Open(hostPath)
	if err != nil {
		return "", err
	}
	return p.add(f), nil
}

// program passes the executable at hostPath and returns the name to execute it by.
func (p *passed) program(hostPath string) (string, error) {
	f, err := os.Open(hostPath)
	if err != nil {
		return "", err
	}
	return p.add(f), nil
}

// closing is the shell words that close every passed descriptor: the sandbox's bash init runs
// them once it has started the agent, so it holds none of the host's directories.
func (p *passed) closing() string {
	var b strings.Builder
	for i := range p.files {
		fmt.Fprintf(&b, " %d<&-", firstPassed+i)
	}
	if b.Len() == 0 {
		return ""
	}
	return "exec" + b.String() + "; "
}

func (p *passed) close() {
	for _, f := range p.files {
		f.Close()
	}
}
