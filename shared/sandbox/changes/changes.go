// Package changes carries an agent's changes to its work tree out of its sandbox as data, and
// applies them to a pristine copy of the repository in another sandbox, where the grader runs.
//
// The data is a layer: an uncompressed tar stream in the OCI image-layer format. It holds the
// regular files, directories and symlinks that are new or changed, as they are now; a deleted
// path dir/name is a whiteout entry dir/.wh.name; a directory whose earlier contents are all gone
// is its own entry followed by the marker dir/.wh..wh..opq (.wh..wh..opq for the root). Parents
// come before children, modes keep only their permission bits, and there are no owners, hard
// links, devices, fifos or sockets. The directory .git at the root of a tree and every
// __pycache__ are never part of a layer: the repository's git data and compiled Python are not
// part of the graded work.
//
// The agent is an adversary. The extracting side (FromUpper, Diff, Manifest.Diff) reads trees
// the agent may still be writing, so it reaches every file by name relative to an open directory
// and never follows a symlink. The applying side (Apply) treats the layer as hostile: no entry
// leaves the tree or writes through a symlink, and no change touches a protected path.
package changes

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Default limits of a layer, used where Limits leaves a field zero.
const (
	DefaultMaxBytes   = 1 << 30
	DefaultMaxEntries = 200_000
)

// ErrTooLarge is wrapped by the error of an extraction whose layer goes over its Limits.
var ErrTooLarge = errors.New("changes: too large")

// Limits bound what a layer may hold, so that an agent cannot make its extraction fill the disk
// or the memory of whoever carries the layer. An extraction over them fails with an error
// wrapping ErrTooLarge that says which limit and its value.
type Limits struct {
	MaxBytes   int64 // total size of the files' contents; 0 means DefaultMaxBytes
	MaxEntries int   // number of tar entries; 0 means DefaultMaxEntries
}

// withDefaults fills the zero (or negative) fields of l.
func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// Summary counts what a layer holds.
type Summary struct {
	Entries int   // tar entries, whiteouts and opaque markers included
	Bytes   int64 // total size of the files' contents
}

// Names with a meaning in a layer.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	gitDir         = ".git"
	pycacheDir     = "__pycache__"
)

// skipName reports whether the entry name of the directory rel of a tree is left out of every
// layer: .git at the root, compiled Python (__pycache__, anywhere: running the tests makes it,
// and the grader's Python compiles its own), and names a layer cannot carry because they would
// read as whiteouts.
func skipName(rel, name string) bool {
	return (rel == "" && name == gitDir) || name == pycacheDir || strings.HasPrefix(name, whiteoutPrefix)
}

// joinRel joins a directory path relative to a tree root ("" for the root) and a name in it.
func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// layerWriter writes the entries of a layer, counting them against its limits.
type layerWriter struct {
	tw  *tar.Writer
	lim Limits
	sum Summary
}

func newLayerWriter(w io.Writer, lim Limits) *layerWriter {
	return &layerWriter{tw: tar.NewWriter(w), lim: lim.withDefaults()}
}

// count adds an entry holding size bytes of content to the summary, or fails if the layer
// would go over a limit.
func (l *layerWriter) count(size int64) error {
	if l.sum.Entries >= l.lim.MaxEntries {
		return fmt.Errorf("%w: more than %d entries (Limits.MaxEntries)", ErrTooLarge, l.lim.MaxEntries)
	}
	if size > l.lim.MaxBytes-l.sum.Bytes {
		return fmt.Errorf("%w: more than %d bytes of file contents (Limits.MaxBytes)", ErrTooLarge, l.lim.MaxBytes)
	}
	l.sum.Entries++
	l.sum.Bytes += size
	return nil
}

func (l *layerWriter) header(h *tar.Header) error {
	if err := l.count(h.Size); err != nil {
		return err
	}
	if err := l.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("changes: write entry %s: %w", h.Name, err)
	}
	return nil
}

func (l *layerWriter) dir(name string, e entry) error {
	return l.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: int64(e.perm), ModTime: e.modTime()})
}

func (l *layerWriter) symlink(name string, e entry) error {
	return l.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: e.target, Mode: 0o777, ModTime: e.modTime()})
}

// file writes the regular file name with the content read from f, whose size was e.size when
// it was opened. The agent may still be writing the file: content past that size is cut, and a
// file that shrank is padded with zeros, so that the tar stays valid.
func (l *layerWriter) file(name string, f io.Reader, e entry) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(e.perm), Size: e.size, ModTime: e.modTime()}
	if err := l.header(h); err != nil {
		return err
	}
	n, err := io.Copy(l.tw, io.LimitReader(f, e.size))
	if err != nil {
		return fmt.Errorf("changes: read %s: %w", name, err)
	}
	if n < e.size {
		if _, err := io.CopyN(l.tw, zeros{}, e.size-n); err != nil {
			return fmt.Errorf("changes: write entry %s: %w", name, err)
		}
	}
	return nil
}

// whiteout writes the entry saying that the path rel is gone.
func (l *layerWriter) whiteout(rel string) error {
	dir, name := splitRel(rel)
	return l.header(&tar.Header{Typeflag: tar.TypeReg, Name: joinRel(dir, whiteoutPrefix+name), Mode: 0o644})
}

// opaque writes the marker saying that the earlier contents of the directory rel ("" for the
// root) are all gone.
func (l *layerWriter) opaque(rel string) error {
	return l.header(&tar.Header{Typeflag: tar.TypeReg, Name: joinRel(rel, opaqueMarker), Mode: 0o644})
}

// close ends the tar stream.
func (l *layerWriter) close() error {
	if err := l.tw.Close(); err != nil {
		return fmt.Errorf("changes: end layer: %w", err)
	}
	return nil
}

// splitRel splits a slash path relative to a tree root into its directory ("" for the root)
// and its last name.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// modTime is the modification time carried by a tar header.
func (e entry) modTime() time.Time {
	return time.Unix(0, e.mtime)
}

// permOf is the permission bits of a mode, the only part of it a layer keeps.
func permOf(mode uint32) fs.FileMode {
	return fs.FileMode(mode) & fs.ModePerm
}
