// Package envarchive unpacks a sample's environment archive (a tar.gz of its work tree) where a
// sandbox runs it: safely, since an archive is input, and, in a sandbox that fetches its own
// (Cloud Run's base image), only once its bytes are checked against the digest the catalog
// recorded.
package envarchive

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

// Unpack extracts the tar.gz that r yields into dest; name is the archive's, for messages.
// Entries may not leave dest (no absolute paths, no "..", no writing through a symlink the
// archive itself planted). Devices and fifos are skipped: nothing a work tree needs.
func Unpack(r io.Reader, name, dest string) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("environment archive %s: %w", name, err)
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
			return fmt.Errorf("environment archive %s: %w", name, err)
		}
		entry := filepath.Clean(h.Name)
		if entry == "." {
			continue
		}
		if filepath.IsAbs(entry) || entry == ".." || strings.HasPrefix(entry, "../") {
			return fmt.Errorf("environment archive %s: entry %q leaves the work tree", name, h.Name)
		}
		target := filepath.Join(dest, entry)
		if err := insideNoSymlink(dest, filepath.Dir(target)); err != nil {
			return fmt.Errorf("environment archive %s: entry %q: %w", name, h.Name, err)
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
				return fmt.Errorf("environment archive %s: link %q: %w", name, h.Name, err)
			}
			os.Remove(target)
			if err := os.Link(src, target); err != nil {
				return err
			}
		}
	}
	// Directory modes last, so a read-only directory did not stop its own entries.
	for _, d := range dirs {
		os.Chmod(d.path, d.mode)
	}
	return nil
}

// UnpackFile extracts the tar.gz at archive into dest (see Unpack).
func UnpackFile(archive, dest string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open environment archive: %w", err)
	}
	defer f.Close()
	return Unpack(f, archive, dest)
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

// WorkTree is the repository inside an unpacked archive: its root, or the one directory it
// holds when the archive was packed with the repository's own folder at the top.
func WorkTree(root string) string {
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
