package local

import (
	"encoding/json"
	"fmt"
	"net"
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

// mount passes hostPath as a mount attached nowhere, with the mount attributes attr, id-mapped
// through userns unless it is -1; the sandbox attaches it where it belongs.
func (p *passed) mount(hostPath string, attr uint64, userns int) (string, error) {
	fd, err := detachedMount(hostPath, attr, userns)
	if err != nil {
		return "", err
	}
	return p.add(os.NewFile(uintptr(fd), hostPath)), nil
}

// overlay passes an overlay of lowers under upper and work (see overlayMount); with sub, only
// that directory of it.
func (p *passed) overlay(lowers []string, upper, work, sub string, userns int) (string, error) {
	fd, err := overlayMount(lowers, upper, work, userns)
	if err != nil {
		return "", err
	}
	if sub != "" && sub != "." {
		subFD, err := unix.OpenTree(fd, sub, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		unix.Close(fd)
		if err != nil {
			return "", fmt.Errorf("overlay: %s: %w", sub, err)
		}
		fd = subFD
	}
	return p.add(os.NewFile(uintptr(fd), "overlay")), nil
}

// listener passes a unix socket listening at path, which only this process's user may connect
// to: the sandbox serves on it without creating a file on the host.
func (p *passed) listener(path string) (string, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", path, err)
	}
	// The socket file stays when this copy closes: the sandbox's copy serves on it.
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return "", err
	}
	f, err := ln.File()
	if err != nil {
		return "", err
	}
	return p.add(f), nil
}

// data passes b in a memory file, read once by the sandbox (a secret: never on the disk).
func (p *passed) data(name string, b []byte) (string, error) {
	f, err := memFile(name, b)
	if err != nil {
		return "", err
	}
	return p.add(f), nil
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
	f, err := memFile("sandbox-args", b)
	if err != nil {
		return nil, fmt.Errorf("arguments of the sandbox: %w", err)
	}
	p.files = append(p.files, f)
	return []string{"--args-fd", fmt.Sprint(firstPassed + len(p.files) - 1)}, nil
}

// memFile is a memory file holding b, at offset 0.
func memFile(name string, b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// file passes the file at hostPath open for reading: a request the sandbox reads once, or the
// executable it runs (by /proc/self/fd/N, so that its host path is on no command line).
func (p *passed) file(hostPath string) (string, error) {
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
