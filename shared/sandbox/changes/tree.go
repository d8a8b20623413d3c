package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// kind is what sort of file an entry is, as far as a layer cares.
type kind int

const (
	kindOther    kind = iota // devices, fifos, sockets: never carried by a layer
	kindDir                  // directory
	kindFile                 // regular file
	kindSymlink              // symbolic link
	kindWhiteout             // overlayfs whiteout: a character device numbered 0/0
)

// entry is what a tree holds at one path, without the contents.
type entry struct {
	kind   kind
	perm   fs.FileMode
	size   int64
	mtime  int64  // nanoseconds since the epoch
	target string // symlinks only
}

func entryOf(st *unix.Stat_t) entry {
	e := entry{perm: permOf(st.Mode), size: st.Size, mtime: st.Mtim.Nano()}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.kind = kindDir
	case unix.S_IFREG:
		e.kind = kindFile
	case unix.S_IFLNK:
		e.kind = kindSymlink
	case unix.S_IFCHR:
		rdev := uint64(st.Rdev) // Rdev is 32 bits on some platforms
		if unix.Major(rdev) == 0 && unix.Minor(rdev) == 0 {
			e.kind = kindWhiteout
		}
	}
	return e
}

// carried reports whether a layer can hold the entry as it is.
func (e entry) carried() bool {
	return e.kind == kindDir || e.kind == kindFile || e.kind == kindSymlink
}

// errChanged says that a path turned into something else between two looks at it.
var errChanged = errors.New("changed while being read")

// vanished reports whether err says that a path the walk saw is gone or is no longer what it
// was: the agent's processes keep running while its tree is read, and such a path is skipped.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.ELOOP) || errors.Is(err, errChanged)
}

// dirHandle is an open directory of a tree being read. Everything below it is reached by name
// relative to it (openat, fstatat) with O_NOFOLLOW, never by a path: a directory that the agent
// swaps for a symlink while we read cannot lead the walk out of the tree.
type dirHandle struct {
	f  *os.File // owns fd; its name is used in error messages
	fd int
}

// openTree opens the root of a tree. The root path itself is the caller's, and trusted.
func openTree(path string) (*dirHandle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("changes: open tree: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	return &dirHandle{f: os.NewFile(uintptr(fd), path), fd: fd}, nil
}

func (d *dirHandle) close() {
	d.f.Close()
}

func (d *dirHandle) pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: d.f.Name() + "/" + name, Err: err}
}

// names lists the directory, sorted so that layers come out in a stable order. It reads the
// directory to its end: call it once per handle.
func (d *dirHandle) names() ([]string, error) {
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("changes: list %s: %w", d.f.Name(), err)
	}
	slices.Sort(names)
	return names, nil
}

// lstat describes name without following it, reading a symlink's target.
func (d *dirHandle) lstat(name string) (entry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return entry{}, d.pathError("lstat", name, err)
	}
	e := entryOf(&st)
	if e.kind == kindSymlink {
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(d.fd, name, buf)
		if err != nil {
			return entry{}, d.pathError("readlink", name, err)
		}
		e.target = string(buf[:n])
	}
	return e, nil
}

// entries describes every name of the directory that a layer can carry, except those skipName
// leaves out; rel is the directory's path in its tree. Names that vanish while listed are left
// out.
func (d *dirHandle) entries(rel string) (map[string]entry, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	out := make(map[string]entry, len(names))
	for _, name := range names {
		if skipName(rel, name) {
			continue
		}
		e, err := d.lstat(name)
		if vanished(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		if e.carried() {
			out[name] = e
		}
	}
	return out, nil
}

// openDir opens the subdirectory name, failing if it is no longer a directory.
func (d *dirHandle) openDir(name string) (*dirHandle, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, d.pathError("open", name, err)
	}
	return &dirHandle{f: os.NewFile(uintptr(fd), d.f.Name()+"/"+name), fd: fd}, nil
}

// openFile opens the regular file name and describes it as opened: its size is the size the
// layer will carry. O_NONBLOCK keeps the open from hanging if the agent swapped the file for a
// fifo; anything but a regular file is closed again and reported as errChanged.
func (d *dirHandle) openFile(name string) (*os.File, entry, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, entry{}, d.pathError("open", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, entry{}, d.pathError("fstat", name, err)
	}
	e := entryOf(&st)
	if e.kind != kindFile {
		unix.Close(fd)
		return nil, entry{}, d.pathError("open", name, errChanged)
	}
	return os.NewFile(uintptr(fd), d.f.Name()+"/"+name), e, nil
}

// xattr reads the extended attribute attr of the directory itself; ok is false when it has
// none, or when the file system has no such attributes or hides them from us.
func (d *dirHandle) xattr(attr string) (value string, ok bool, err error) {
	return fxattr(d.fd, d.f.Name(), attr)
}

func fxattr(fd int, name, attr string) (string, bool, error) {
	buf := make([]byte, 256)
	n, err := unix.Fgetxattr(fd, attr, buf)
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EPERM),
		errors.Is(err, unix.EACCES):
		return "", false, nil
	case errors.Is(err, unix.ERANGE):
		return "", true, nil // longer than any value we look for: present, and not one of them
	case err != nil:
		return "", false, fmt.Errorf("changes: read %s of %s: %w", attr, name, err)
	}
	return string(buf[:n]), true, nil
}
