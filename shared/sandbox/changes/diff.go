package changes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
)

// Diff writes the layer that turns the tree pristine into the tree work. Regular files are
// compared by type, permission bits, size, then content; symlinks by target; directories by
// permission bits. A path whose type changed is written as its new entry alone, since Apply
// replaces whatever is there; a deleted directory is one whiteout.
func Diff(w io.Writer, pristine, work string, lim Limits) (Summary, error) {
	p, err := openTree(pristine)
	if err != nil {
		return Summary{}, err
	}
	defer p.close()
	wd, err := openTree(work)
	if err != nil {
		return Summary{}, err
	}
	defer wd.close()
	lw := newLayerWriter(w, lim)
	if err := diffDir(lw, diskBase{p}, wd, ""); err != nil {
		return lw.sum, err
	}
	return lw.sum, lw.close()
}

// base is the earlier state that a work tree is compared with: a pristine copy on disk (Diff)
// or a manifest (Manifest.Diff). One comparison walk serves both.
type base interface {
	// entries describes the names of this directory, whose path in the tree is rel, as
	// dirHandle.entries does.
	entries(rel string) (map[string]entry, error)
	// sub is the subdirectory name, which entries described as a directory.
	sub(name string) (base, error)
	// changed reports whether the work tree's regular file name, described by now, differs
	// from the base's, described by was.
	changed(name string, was, now entry, work *dirHandle) (bool, error)
	close()
}

// diffDir writes the changes of the work directory w, whose path in the tree is rel, from the
// base directory b. A nil b means that the directory is new: everything in it is written.
func diffDir(lw *layerWriter, b base, w *dirHandle, rel string) error {
	var was map[string]entry
	if b != nil {
		var err error
		if was, err = b.entries(rel); err != nil {
			return err
		}
	}
	now, err := w.entries(rel)
	if err != nil {
		return err
	}
	for _, name := range unionNames(was, now) {
		p := joinRel(rel, name)
		old, inBase := was[name]
		cur, inWork := now[name]
		switch {
		case !inWork:
			err = lw.whiteout(p)
		case !inBase || old.kind != cur.kind:
			err = writeNew(lw, w, name, p, cur)
		default:
			err = diffSame(lw, b, w, name, p, old, cur)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// diffSame writes the changes of the entry name, of the same kind in the base and the work tree.
func diffSame(lw *layerWriter, b base, w *dirHandle, name, p string, old, cur entry) error {
	switch cur.kind {
	case kindDir:
		return diffSubdir(lw, b, w, name, p, old, cur)
	case kindSymlink:
		if old.target == cur.target {
			return nil
		}
		return lw.symlink(p, cur)
	default:
		changed, err := b.changed(name, old, cur, w)
		if err != nil || !changed {
			return err
		}
		return writeFile(lw, w, name, p, nil)
	}
}

func diffSubdir(lw *layerWriter, b base, w *dirHandle, name, p string, old, cur entry) error {
	sub, err := w.openDir(name)
	if vanished(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	defer sub.close()
	bsub, err := b.sub(name)
	if err != nil {
		return err
	}
	defer bsub.close()
	if old.perm != cur.perm {
		if err := lw.dir(p, cur); err != nil {
			return err
		}
	}
	return diffDir(lw, bsub, sub, p)
}

// writeNew writes the entry name of the directory w and, for a directory, everything under it.
func writeNew(lw *layerWriter, w *dirHandle, name, p string, cur entry) error {
	switch cur.kind {
	case kindDir:
		sub, err := w.openDir(name)
		if vanished(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("changes: %w", err)
		}
		defer sub.close()
		if err := lw.dir(p, cur); err != nil {
			return err
		}
		return diffDir(lw, nil, sub, p)
	case kindSymlink:
		return lw.symlink(p, cur)
	default:
		return writeFile(lw, w, name, p, nil)
	}
}

// writeFile writes the regular file name of the directory d as the entry p, after check (nil:
// none) has seen it open; a file that is gone or no longer regular when opened is skipped.
func writeFile(lw *layerWriter, d *dirHandle, name, p string, check func(*os.File) error) error {
	f, e, err := d.openFile(name)
	if vanished(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	defer f.Close()
	if check != nil {
		if err := check(f); err != nil {
			return err
		}
	}
	return lw.file(p, f, e)
}

// unionNames is the sorted names of a and b, each once.
func unionNames(a, b map[string]entry) []string {
	names := slices.AppendSeq(slices.Collect(maps.Keys(a)), maps.Keys(b))
	slices.Sort(names)
	return slices.Compact(names)
}

// diskBase is a directory of a pristine tree on disk.
type diskBase struct{ d *dirHandle }

func (b diskBase) entries(rel string) (map[string]entry, error) { return b.d.entries(rel) }

func (b diskBase) sub(name string) (base, error) {
	d, err := b.d.openDir(name)
	if err != nil {
		return nil, fmt.Errorf("changes: pristine tree: %w", err)
	}
	return diskBase{d}, nil
}

func (b diskBase) close() { b.d.close() }

// changed compares the two files as opened (not as listed: the work file may have changed
// since), by permission bits, size, then content.
func (b diskBase) changed(name string, _, _ entry, work *dirHandle) (bool, error) {
	pf, pe, err := b.d.openFile(name)
	if err != nil {
		return false, fmt.Errorf("changes: pristine tree: %w", err)
	}
	defer pf.Close()
	wf, we, err := work.openFile(name)
	if vanished(err) {
		return false, nil // gone: writeFile would skip it anyway
	}
	if err != nil {
		return false, fmt.Errorf("changes: %w", err)
	}
	defer wf.Close()
	if pe.perm != we.perm || pe.size != we.size {
		return true, nil
	}
	same, err := sameContent(pf, wf, pe.size)
	if err != nil {
		return false, fmt.Errorf("changes: compare %s: %w", name, err)
	}
	return !same, nil
}

// sameContent reports whether a and b hold the same first size bytes.
func sameContent(a, b io.Reader, size int64) (bool, error) {
	const chunk = 64 << 10
	bufA, bufB := make([]byte, chunk), make([]byte, chunk)
	for size > 0 {
		n := int(min(size, chunk))
		if _, err := io.ReadFull(a, bufA[:n]); err != nil {
			return false, err
		}
		if _, err := io.ReadFull(b, bufB[:n]); errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return false, nil // the work file shrank while read: it changed
		} else if err != nil {
			return false, err
		}
		if !bytes.Equal(bufA[:n], bufB[:n]) {
			return false, nil
		}
		size -= int64(n)
	}
	return true, nil
}
