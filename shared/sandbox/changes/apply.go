package changes

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Result says what Apply did with a layer.
type Result struct {
	// Applied counts the entries applied, including those that found the tree as they say
	// already (a directory entry for an unchanged directory, a whiteout for a missing path).
	Applied int
	// Ignored holds the slash paths relative to root of the changes not applied, in layer
	// order, each once: the grader's record of what the agent tried and was refused.
	Ignored []string
}

// Apply applies the layer read from r to the tree at root, skipping every change that touches a
// protected path, and returns the paths it skipped. protected gets slash paths relative to root;
// nil protects nothing.
//
// The layer may come from the adversary. An entry whose name is empty, absolute, or leaves the
// tree through ".." is an error, returned with what was applied so far left in place. Nothing is
// written through a symlink: an entry whose parent is not a real directory (an earlier entry
// replaced it with a symlink or a file) is skipped, and an entry replaces what is at its path
// instead of writing into it. A change at a path P is skipped when P or a directory above it is
// protected, or when it removes or replaces something at P that holds a protected path; changing
// the permission bits of a directory counts as replacing it, since it could hide protected files
// from the grader. The directory .git at the root and every __pycache__ are always protected: a
// layer never carries them, so an entry for one comes from a forged layer. Hard links, devices
// and fifos are skipped.
//
// Apply checks each path with Lstat before it uses it, so it assumes that nothing else writes
// the tree while it runs. It writes everything the layer holds: bound r if its size is not.
func Apply(r io.Reader, root string, protected func(rel string) bool) (Result, error) {
	if protected == nil {
		protected = func(string) bool { return false }
	}
	a := &applier{root: root, protected: protected, ignored: map[string]bool{}, dirPerms: map[string]fs.FileMode{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return a.res, fmt.Errorf("changes: read layer: %w", err)
		}
		if err := a.apply(h, tr); err != nil {
			return a.res, err
		}
	}
	return a.res, a.setDirPerms()
}

// applier holds the state of one Apply.
type applier struct {
	root      string
	protected func(string) bool
	res       Result
	ignored   map[string]bool
	// dirPerms holds the permission bits of the directories the layer set. Until the end they
	// stay writable by us, so that a read-only directory can still receive its entries.
	dirPerms map[string]fs.FileMode
}

func (a *applier) apply(h *tar.Header, content io.Reader) error {
	rel, err := entryPath(h.Name)
	if err != nil {
		return err
	}
	dir, name := splitRel(rel)
	switch {
	case name == opaqueMarker:
		return a.opaque(dir)
	case strings.HasPrefix(name, whiteoutPrefix):
		gone := strings.TrimPrefix(name, whiteoutPrefix)
		if gone == "" || gone == "." || gone == ".." {
			return fmt.Errorf("changes: entry %q leaves the tree", h.Name)
		}
		return a.whiteout(joinRel(dir, gone))
	case rel == "":
		if h.Typeflag == tar.TypeDir {
			return nil // the root itself, which is there already
		}
		return fmt.Errorf("changes: entry %q replaces the root of the tree", h.Name)
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm
	switch h.Typeflag {
	case tar.TypeDir:
		return a.dir(rel, perm)
	case tar.TypeReg:
		return a.file(rel, perm, content)
	case tar.TypeSymlink:
		return a.symlink(rel, h.Linkname)
	default:
		a.ignore(rel)
		return nil
	}
}

// entryPath turns an entry's name into a clean slash path relative to the root, "" for the root.
func entryPath(name string) (string, error) {
	rel := path.Clean(name)
	if name == "" || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("changes: entry %q leaves the tree", name)
	}
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

// spot is a path of the tree as it is now, looked at without following symlinks.
type spot struct {
	rel, abs string
	existing fs.FileInfo // what is there now; nil if nothing
	blocked  bool        // a parent is a symlink or not a directory: going there leaves the tree
}

// locate looks at the path rel (not the root) and its parents.
func (a *applier) locate(rel string) (spot, error) {
	s := spot{rel: rel, abs: filepath.Join(a.root, filepath.FromSlash(rel))}
	for _, dir := range ancestors(rel) {
		fi, err := os.Lstat(filepath.Join(a.root, filepath.FromSlash(dir)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return s, nil // nothing at rel either
		case err != nil:
			return s, fmt.Errorf("changes: apply %s: %w", rel, err)
		case !fi.IsDir():
			s.blocked = true
			return s, nil
		}
	}
	fi, err := os.Lstat(s.abs)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("changes: apply %s: %w", rel, err)
	}
	s.existing = fi
	return s, nil
}

// allowed reports whether a change at s may be made. replaces says whether the change removes
// or replaces what exists at s; it then may not hold any protected path.
func (a *applier) allowed(s spot, replaces bool) (bool, error) {
	if s.blocked || a.protectedPath(s.rel) {
		return false, nil
	}
	if s.existing == nil || !replaces {
		return true, nil
	}
	held, err := a.holdsProtected(s)
	return !held, err
}

// isProtected reports whether rel itself is protected: by the caller, or because it is the
// repository's git data or compiled Python (a .pyc whose recorded source size and time match
// runs instead of its source: a forged one next to the tests would replace them).
func (a *applier) isProtected(rel string) bool {
	return rel == gitDir || strings.HasPrefix(rel, gitDir+"/") || hasSegment(rel, pycacheDir) || a.protected(rel)
}

// hasSegment reports whether the slash path rel has seg as one of its elements.
func hasSegment(rel, seg string) bool {
	for _, part := range strings.Split(rel, "/") {
		if part == seg {
			return true
		}
	}
	return false
}

// protectedPath reports whether rel or a directory above it is protected.
func (a *applier) protectedPath(rel string) bool {
	for _, dir := range ancestors(rel) {
		if a.isProtected(dir) {
			return true
		}
	}
	return rel != "" && a.isProtected(rel)
}

// ancestors lists the directories above rel, outermost first: "a" and "a/b" for "a/b/c".
func ancestors(rel string) []string {
	var dirs []string
	for i := range len(rel) {
		if rel[i] == '/' {
			dirs = append(dirs, rel[:i])
		}
	}
	return dirs
}

// holdsProtected reports whether a protected path lies under s, which exists. It walks what
// is there now without following symlinks.
func (a *applier) holdsProtected(s spot) (bool, error) {
	held := false
	err := filepath.WalkDir(s.abs, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if a.isProtected(s.rel + filepath.ToSlash(strings.TrimPrefix(p, s.abs))) {
			held = true
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("changes: apply %s: look for protected paths: %w", s.rel, err)
	}
	return held, nil
}

// ignore lists rel among the changes not applied.
func (a *applier) ignore(rel string) {
	if !a.ignored[rel] {
		a.ignored[rel] = true
		a.res.Ignored = append(a.res.Ignored, rel)
	}
}

// whiteout removes rel. A whiteout for a path that does not exist has nothing to do.
func (a *applier) whiteout(rel string) error {
	s, err := a.locate(rel)
	if err != nil {
		return err
	}
	ok, err := a.allowed(s, true)
	if err != nil || !ok {
		a.ignore(rel)
		return err
	}
	if s.existing != nil {
		if err := os.RemoveAll(s.abs); err != nil {
			return fmt.Errorf("changes: apply whiteout of %s: %w", rel, err)
		}
	}
	a.res.Applied++
	return nil
}

// opaque removes every child of the directory rel ("" for the root) whose removal protection
// allows. The blocked ones stay, and are listed among the ignored.
func (a *applier) opaque(rel string) error {
	abs := a.root
	if rel != "" {
		s, err := a.locate(rel)
		if err != nil {
			return err
		}
		if s.blocked || a.protectedPath(rel) || (s.existing != nil && !s.existing.IsDir()) {
			a.ignore(rel)
			return nil
		}
		if s.existing == nil {
			a.res.Applied++ // nothing to hide
			return nil
		}
		abs = s.abs
	}
	children, err := os.ReadDir(abs)
	if err != nil {
		return fmt.Errorf("changes: apply opaque %s: %w", rel, err)
	}
	for _, c := range children {
		s := spot{rel: joinRel(rel, c.Name()), abs: filepath.Join(abs, c.Name())}
		if s.existing, err = c.Info(); err != nil {
			return fmt.Errorf("changes: apply opaque %s: %w", rel, err)
		}
		ok, err := a.allowed(s, true)
		if err != nil {
			return err
		}
		if !ok {
			a.ignore(s.rel)
			continue
		}
		if err := os.RemoveAll(s.abs); err != nil {
			return fmt.Errorf("changes: apply opaque %s: %w", rel, err)
		}
	}
	a.res.Applied++
	return nil
}

// dir makes rel a directory with the permission bits perm, replacing what else is there.
func (a *applier) dir(rel string, perm fs.FileMode) error {
	s, err := a.locate(rel)
	if err != nil {
		return err
	}
	if !s.blocked && s.existing != nil && s.existing.IsDir() && s.existing.Mode().Perm() == perm {
		a.res.Applied++ // already as the layer says: not a change
		return nil
	}
	ok, err := a.allowed(s, true)
	if err != nil || !ok {
		a.ignore(rel)
		return err
	}
	if s.existing == nil || !s.existing.IsDir() {
		if err := a.makeRoom(s); err != nil {
			return err
		}
		if err := os.Mkdir(s.abs, 0o700); err != nil {
			return fmt.Errorf("changes: apply %s: %w", rel, err)
		}
	}
	if err := os.Chmod(s.abs, perm|0o700); err != nil {
		return fmt.Errorf("changes: apply %s: %w", rel, err)
	}
	a.dirPerms[rel] = perm
	a.res.Applied++
	return nil
}

// clear makes room at rel for a new file or symlink: ok is false when a protection refused it
// (rel is then listed as ignored).
func (a *applier) clear(rel string) (spot, bool, error) {
	s, err := a.locate(rel)
	if err != nil {
		return s, false, err
	}
	ok, err := a.allowed(s, true)
	if err != nil || !ok {
		a.ignore(rel)
		return s, false, err
	}
	return s, true, a.makeRoom(s)
}

// file makes rel a regular file with the permission bits perm and the given content.
func (a *applier) file(rel string, perm fs.FileMode, content io.Reader) error {
	s, ok, err := a.clear(rel)
	if err != nil || !ok {
		return err
	}
	// O_EXCL|O_NOFOLLOW: the path was just cleared, and is created, never written through.
	f, err := os.OpenFile(s.abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("changes: apply %s: %w", rel, err)
	}
	_, err = io.Copy(f, content)
	if err == nil {
		err = f.Chmod(perm) // after creation, so that the umask does not apply
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("changes: apply %s: %w", rel, err)
	}
	a.res.Applied++
	return nil
}

// symlink makes rel a symlink to target, which is stored as it is and never followed here.
func (a *applier) symlink(rel, target string) error {
	s, ok, err := a.clear(rel)
	if err != nil || !ok {
		return err
	}
	if err := os.Symlink(target, s.abs); err != nil {
		return fmt.Errorf("changes: apply %s: %w", rel, err)
	}
	a.res.Applied++
	return nil
}

// makeRoom removes what is at s and creates its missing parents, as 0755 directories.
func (a *applier) makeRoom(s spot) error {
	if s.existing != nil {
		if err := os.RemoveAll(s.abs); err != nil {
			return fmt.Errorf("changes: apply %s: %w", s.rel, err)
		}
	}
	// locate found every existing parent to be a real directory.
	for _, dir := range ancestors(s.rel) {
		abs := filepath.Join(a.root, filepath.FromSlash(dir))
		err := os.Mkdir(abs, 0o755)
		if err == nil {
			err = os.Chmod(abs, 0o755) // whatever the umask
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("changes: apply %s: %w", s.rel, err)
		}
	}
	return nil
}

// setDirPerms gives the directories the layer set their final permission bits, deepest first
// so that a parent losing its search bit does not keep us from reaching its children. A
// directory that a later entry removed or replaced is left alone.
func (a *applier) setDirPerms() error {
	rels := slices.Collect(maps.Keys(a.dirPerms))
	slices.SortFunc(rels, func(x, y string) int {
		return cmp.Or(cmp.Compare(strings.Count(y, "/"), strings.Count(x, "/")), strings.Compare(x, y))
	})
	for _, rel := range rels {
		s, err := a.locate(rel)
		if err != nil {
			return err
		}
		if s.blocked || s.existing == nil || !s.existing.IsDir() {
			continue
		}
		if err := os.Chmod(s.abs, a.dirPerms[rel]); err != nil {
			return fmt.Errorf("changes: apply %s: %w", rel, err)
		}
	}
	return nil
}
