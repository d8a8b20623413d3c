package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

const (
	// whiteoutPrefix marks an OCI whiteout entry: ".wh.<name>" deletes <name> of lower layers.
	whiteoutPrefix = ".wh."
	// opaqueMarker in a directory hides all of that directory's lower-layer content.
	opaqueMarker = ".wh..wh..opq"
	// metaPrefix starts AUFS bookkeeping names (".wh..wh.plnk" and the like), which are not
	// whiteouts and are dropped.
	metaPrefix = ".wh..wh."
)

// unpackLayer extracts l's uncompressed tar into dir, an empty directory, in overlayfs form,
// and checks that the stream's digest is diffID. See the package comment for what is kept,
// skipped and refused.
func unpackLayer(ctx context.Context, dir string, l v1.Layer, diffID v1.Hash, max int64) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	sum := sha256.New()
	stream := &limitedReader{r: io.TeeReader(rc, sum), left: max, max: max}
	x := &extractor{root: dir, max: max, budget: max, dirs: map[string]struct{}{}, dirTimes: map[string]times{}}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := x.extract(ctx, tar.NewReader(stream)); err != nil {
		return err
	}
	// The digest covers the whole stream, including what follows the end-of-archive marker.
	// Reading to the end also lets a registry blob's own digest check run.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("%w: content is sha256:%s", ErrDigestMismatch, got)
	}
	if err := x.finish(); err != nil {
		return err
	}
	// The rename that follows publishes the layer as complete; it must not be complete in
	// name only after a power cut.
	return syncFS(dir)
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// limitedReader fails with ErrLayerTooLarge once more than max bytes have been read.
type limitedReader struct {
	r         io.Reader
	left, max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	if int64(len(p)) > l.left {
		// One byte more than allowed tells a stream of exactly max bytes from a longer one.
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	return n, err
}

func (l *limitedReader) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes uncompressed", ErrLayerTooLarge, l.max)
}

type times struct{ atime, mtime time.Time }

// extractor writes one layer's entries under root.
type extractor struct {
	root string
	max  int64
	// budget is what file content may still be written; sparse files expand beyond their
	// stream, so the stream limit alone does not bound the disk.
	budget int64
	// dirs are relative directory paths already checked to be real directories, so that deep
	// trees do not Lstat every parent for every entry. Any removal empties it.
	dirs map[string]struct{}
	// dirTimes are set last: creating entries inside a directory changes its mtime.
	dirTimes map[string]times
}

func (x *extractor) extract(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
	}
}

// finish sets the directories' times, now that nothing more is created inside them.
func (x *extractor) finish() error {
	for p, t := range x.dirTimes {
		if err := setTimes(p, t); err != nil {
			return err
		}
	}
	return nil
}

// clean turns a tar name into a slash-separated path relative to the layer root ("." for the
// root itself), refusing names that are absolute or leave the root.
func clean(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafeLayer)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafeLayer)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: name leaves the layer", ErrUnsafeLayer)
	}
	return c, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		// Devices (see the package comment) and global PAX headers, whose records only
		// carry metadata that is not applied.
		return nil
	}
	rel, err := clean(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the layer root must stay a directory", ErrUnsafeLayer)
		}
		return x.attrs(x.root, hdr, true)
	}
	parentRel, base := path.Split(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(parentRel, base)
	}
	parent, err := x.dir(parentRel, true)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, base)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.mkdir(target, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(target, hdr, r)
	case tar.TypeSymlink:
		if err := x.remove(target); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		return x.attrs(target, hdr, false)
	case tar.TypeLink:
		return x.hardlink(target, hdr)
	case tar.TypeFifo:
		if err := x.remove(target); err != nil {
			return err
		}
		if err := unix.Mkfifo(target, 0o600); err != nil {
			return err
		}
		return x.attrs(target, hdr, true)
	}
	return nil
}

// dir returns the absolute path of the directory rel (slash-separated, relative to the
// root), checking that it and each of its parents is a real directory, not a symlink. With
// create, missing directories are made (root-owned, 0755, as Docker does).
func (x *extractor) dir(rel string, create bool) (string, error) {
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" || rel == "." {
		return x.root, nil
	}
	if _, ok := x.dirs[rel]; ok {
		return filepath.Join(x.root, rel), nil
	}
	p := x.root
	for _, c := range strings.Split(rel, "/") {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return "", fmt.Errorf("%w: parent %s is not a directory", ErrUnsafeLayer, x.rel(p))
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", err
			}
		default:
			return "", err
		}
	}
	x.dirs[rel] = struct{}{}
	return p, nil
}

func (x *extractor) rel(p string) string {
	r, err := filepath.Rel(x.root, p)
	if err != nil {
		return p
	}
	return r
}

// remove removes what stands at target, so that a later entry replaces an earlier one as tar
// says, and so that nothing is ever opened for writing in place (it might be a symlink or a
// hard link).
func (x *extractor) remove(target string) error {
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	clear(x.dirs)
	for p := range x.dirTimes {
		if p == target || strings.HasPrefix(p, target+"/") {
			delete(x.dirTimes, p)
		}
	}
	return os.RemoveAll(target)
}

func (x *extractor) mkdir(target string, hdr *tar.Header) error {
	// A directory entry may follow entries inside it; the directory then stays.
	if !isDir(target) {
		if err := x.remove(target); err != nil {
			return err
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
	}
	return x.attrs(target, hdr, true)
}

func (x *extractor) file(target string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size < 0 || hdr.Size > x.budget {
		return fmt.Errorf("%w: more than %d bytes of file content", ErrLayerTooLarge, x.max)
	}
	x.budget -= hdr.Size
	if err := x.remove(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		// chown clears setuid and setgid, so the mode comes after it.
		err = f.Chown(hdr.Uid, hdr.Gid)
	}
	if err == nil {
		err = unix.Fchmod(int(f.Fd()), mode(hdr))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(target, headerTimes(hdr))
}

// hardlink links target to an earlier entry of this layer; the link target must resolve
// inside the layer without following symlinks.
func (x *extractor) hardlink(target string, hdr *tar.Header) error {
	rel, err := clean(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if rel == "." {
		return fmt.Errorf("%w: hard link to the layer root", ErrUnsafeLayer)
	}
	parentRel, base := path.Split(rel)
	parent, err := x.dir(parentRel, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	old := filepath.Join(parent, base)
	if old == target {
		return nil
	}
	if _, err := os.Lstat(old); err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if err := x.remove(target); err != nil {
		return err
	}
	// link(2) does not follow a symlink at old: the link is to the symlink itself.
	return os.Link(old, target)
}

// whiteout records, in overlayfs form, that base (".wh.<name>" or the opaque marker) deletes
// something of the lower layers.
func (x *extractor) whiteout(parentRel, base string) error {
	parent, err := x.dir(parentRel, true)
	if err != nil {
		return err
	}
	switch {
	case base == opaqueMarker:
		return unix.Lsetxattr(parent, "trusted.overlay.opaque", []byte("y"), 0)
	case strings.HasPrefix(base, metaPrefix):
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafeLayer, name)
	}
	target := filepath.Join(parent, name)
	// A whiteout only hides lower layers: an entry of this same layer with that name wins,
	// whichever comes first in the tar.
	if _, err := os.Lstat(target); err == nil {
		return nil
	}
	return unix.Mknod(target, unix.S_IFCHR, 0)
}

// attrs gives target the entry's owner, mode (unless it is a symlink) and times; a
// directory's times wait for finish.
func (x *extractor) attrs(target string, hdr *tar.Header, chmod bool) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if chmod {
		if err := unix.Fchmodat(unix.AT_FDCWD, target, mode(hdr), 0); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirTimes[target] = headerTimes(hdr)
		return nil
	}
	return setTimes(target, headerTimes(hdr))
}

// mode is the entry's permission bits with setuid, setgid and sticky, in chmod(2)'s form.
func mode(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777
}

func headerTimes(hdr *tar.Header) times {
	t := times{atime: hdr.AccessTime, mtime: hdr.ModTime}
	if t.atime.IsZero() {
		t.atime = t.mtime
	}
	return t
}

// setTimes sets p's access and modification times without following a symlink at p.
func setTimes(p string, t times) error {
	ts := []unix.Timespec{timespec(t.atime), timespec(t.mtime)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
