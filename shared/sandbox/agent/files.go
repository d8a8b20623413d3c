package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// replace swaps the one occurrence of old in the file for new. Anything but exactly one
// occurrence leaves the file alone and says why.
func (s *Server) replace(path, old, new string) (bool, string) {
	if path == "" {
		return false, "file path is empty"
	}
	if old == "" {
		return false, "the string to replace is empty"
	}
	abs := s.resolve(path)
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, fmt.Sprintf("no such file: %s", path)
	case err != nil:
		return false, fmt.Sprintf("cannot read %s: %v", path, unwrapPath(err))
	case st.IsDir():
		return false, fmt.Sprintf("%s is a directory", path)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return false, fmt.Sprintf("cannot read %s: %v", path, unwrapPath(err))
	}
	content := string(data)
	switch n := strings.Count(content, old); n {
	case 0:
		return false, fmt.Sprintf("the string to replace was not found in %s", path)
	case 1:
	default:
		return false, fmt.Sprintf("the string to replace occurs %d times in %s; it must occur exactly once", n, path)
	}
	// WriteFile truncates in place, so the file keeps its mode, owner and hard links.
	if err := os.WriteFile(abs, []byte(strings.Replace(content, old, new, 1)), st.Mode().Perm()); err != nil {
		return false, fmt.Sprintf("cannot write %s: %v", path, unwrapPath(err))
	}
	return true, fmt.Sprintf("replaced 1 occurrence in %s", path)
}

// write stores body at path, creating parent directories. A new file gets 0644 (0755 when
// executable); an existing one keeps its mode, plus the execute bits when asked.
func (s *Server) write(path string, body io.Reader, executable bool) (int64, string, error) {
	abs := s.resolve(path)
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		return 0, abs, fmt.Errorf("%s is a directory", path)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return 0, abs, fmt.Errorf("cannot create the parent directory of %s: %v", path, unwrapPath(err))
	}
	perm := os.FileMode(0o644)
	if executable {
		perm = 0o755
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return 0, abs, fmt.Errorf("cannot write %s: %v", path, unwrapPath(err))
	}
	n, err := io.Copy(f, body)
	if err != nil {
		f.Close()
		return n, abs, err
	}
	if executable {
		// An existing file keeps its mode on open; add the execute bits where it has read bits.
		st, err := f.Stat()
		if err == nil {
			m := st.Mode().Perm()
			err = f.Chmod(m | (m&0o444)>>2 | 0o100)
		}
		if err != nil {
			f.Close()
			return n, abs, fmt.Errorf("cannot make %s executable: %v", path, unwrapPath(err))
		}
	}
	if err := f.Close(); err != nil {
		return n, abs, fmt.Errorf("cannot write %s: %v", path, unwrapPath(err))
	}
	return n, abs, nil
}

// unwrapPath drops the *PathError's path, which would repeat the absolute path we already name.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
