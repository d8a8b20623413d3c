package local

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// unpack extracts the tar.gz at archive into dest. Entries may not leave dest (no absolute
// paths, no "..", no writing through a symlink the archive itself planted).
func unpack(archive, dest string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open environment archive: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("environment archive %s: %w", archive, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("environment archive %s: %w", archive, err)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("environment archive %s: entry %q leaves the work tree", archive, h.Name)
		}
		target := filepath.Join(dest, name)
		if err := insideNoSymlink(dest, filepath.Dir(target)); err != nil {
			return fmt.Errorf("environment archive %s: entry %q: %w", archive, h.Name, err)
		}
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{target, mode | 0o700})
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpack %s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(dest, filepath.Clean(h.Linkname))
			if err := insideNoSymlink(dest, src); err != nil {
				return fmt.Errorf("environment archive %s: link %q: %w", archive, h.Name, err)
			}
			os.Remove(target)
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			// Devices, fifos: nothing a work tree needs.
		}
	}
	// Directory modes last, so a read-only directory did not stop its own entries.
	for _, d := range dirs {
		os.Chmod(d.path, d.mode)
	}
	return nil
}

// insideNoSymlink checks that p is dest or below it, with no symlink on the way.
func insideNoSymlink(dest, p string) error {
	rel, err := filepath.Rel(dest, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return errors.New("outside the work tree")
	}
	cur := dest
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return errors.New("through a symlink")
		}
	}
	return nil
}

// workTree is the repository inside an unpacked archive: its root, or the one directory it
// holds when the archive was packed with the repository's own folder at the top.
func workTree(root string) string {
	if _, err := os.Lstat(filepath.Join(root, ".git")); err == nil {
		return root
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 1 || !entries[0].IsDir() {
		return root
	}
	inner := filepath.Join(root, entries[0].Name())
	if _, err := os.Lstat(filepath.Join(inner, ".git")); err == nil {
		return inner
	}
	return root
}

// envsDir holds each environment archive unpacked once, the lower layer of its sandboxes.
func (r *Runtime) envsDir() string { return filepath.Join(r.dataDir, "sandboxes", ".envs") }

// unpacked returns the directory holding archive unpacked, unpacking it the first time. The
// key covers the archive's path, size and modification time, so a replaced archive is unpacked
// anew; concurrent first uses each unpack into a temporary directory and one rename wins.
func (r *Runtime) unpacked(archive string) (string, error) {
	st, err := os.Stat(archive)
	if err != nil {
		return "", fmt.Errorf("environment archive: %w", err)
	}
	dest := filepath.Join(r.envsDir(), hexHash(fmt.Sprintf("%s\x00%d\x00%d", archive, st.Size(), st.ModTime().UnixNano())))
	if _, err := os.Stat(dest); err == nil {
		return dest, nil
	}
	if err := os.MkdirAll(r.envsDir(), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(r.envsDir(), "unpacking-")
	if err != nil {
		return "", err
	}
	if err := unpack(archive, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dest); serr != nil {
			return "", fmt.Errorf("environment archive: %w", err)
		}
	}
	return dest, nil
}
