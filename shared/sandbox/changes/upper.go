package changes

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Extended attributes that overlayfs sets in an upper directory: trusted.* by default, user.*
// on a mount with the userxattr option.
var (
	opaqueXattrs   = []string{"trusted.overlay.opaque", "user.overlay.opaque"}
	redirectXattrs = []string{"trusted.overlay.redirect", "user.overlay.redirect"}
	metacopyXattrs = []string{"trusted.overlay.metacopy", "user.overlay.metacopy"}
)

// FromUpper writes as a layer the changes held by an overlayfs upper directory, restricted to
// the subdirectory sub of it ("" or "." = all of it; the layer's paths are then relative to
// sub). An overlay keeps the changes to its merged tree in its upper directory already:
// whiteouts (character devices 0/0) become whiteout entries, and opaque directories (extended
// attribute trusted.overlay.opaque or user.overlay.opaque = "y") become opaque markers.
//
// The agent's processes may be writing the upper directory while it is read: a path that
// vanishes is skipped, and a file is cut at the size it had when opened. An overlay mounted
// with redirect_dir or metacopy keeps part of its changes as references to its lower layers,
// which FromUpper cannot see: it fails on them rather than write a wrong layer.
func FromUpper(w io.Writer, upper, sub string, lim Limits) (Summary, error) {
	rel, err := cleanSub(sub)
	if err != nil {
		return Summary{}, err
	}
	root, err := openTree(upper)
	if err != nil {
		return Summary{}, err
	}
	defer root.close()
	d, state, err := openSub(root, rel)
	if err != nil {
		return Summary{}, err
	}
	if d != nil && d != root {
		defer d.close()
	}
	lw := newLayerWriter(w, lim)
	if err := writeSub(lw, d, state); err != nil {
		return lw.sum, err
	}
	return lw.sum, lw.close()
}

// cleanSub turns sub into a slash path relative to the upper directory, "" for all of it.
func cleanSub(sub string) (string, error) {
	rel := path.Clean(sub)
	if rel == "." {
		return "", nil
	}
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("changes: subdirectory %q is not inside the upper directory", sub)
	}
	return rel, nil
}

// subState is what became of the tree at sub in the merged view, as the upper directory says.
type subState int

const (
	subUnchanged subState = iota // not in the upper directory: the lower layers' copy, unchanged
	subMerged                    // a directory merged with the lower layers' copy
	subOpaque                    // a directory hiding the lower layers' copy
	subGone                      // deleted, or replaced by something other than a directory
)

// openSub opens the directory rel of the upper directory root and says what became of it. The
// handle is root itself for rel "", and nil unless the state is subMerged or subOpaque.
func openSub(root *dirHandle, rel string) (*dirHandle, subState, error) {
	hidden, err := overlayDir(root)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	if rel != "" {
		names = strings.Split(rel, "/")
	}
	d := root
	for _, name := range names {
		e, err := d.lstat(name)
		var next *dirHandle
		if err == nil && e.kind == kindDir {
			next, err = d.openDir(name)
		}
		if d != root {
			d.close()
		}
		switch {
		case vanished(err) && hidden:
			return nil, subGone, nil // an ancestor hides the lower copy, and nothing replaced it
		case vanished(err):
			return nil, subUnchanged, nil
		case err != nil:
			return nil, 0, fmt.Errorf("changes: %w", err)
		case next == nil:
			return nil, subGone, nil // a whiteout, or not a directory
		}
		d = next
		opaque, err := overlayDir(d)
		if err != nil {
			d.close()
			return nil, 0, err
		}
		hidden = hidden || opaque
	}
	if hidden {
		return d, subOpaque, nil
	}
	return d, subMerged, nil
}

// writeSub writes the layer of the tree at sub, which is in state and opened as d.
func writeSub(lw *layerWriter, d *dirHandle, state subState) error {
	switch state {
	case subUnchanged:
		return nil
	case subGone:
		// The merged tree has no directory at sub any more; the nearest a layer can say is
		// that everything in it is gone.
		return lw.opaque("")
	case subOpaque:
		if err := lw.opaque(""); err != nil {
			return err
		}
	}
	return upperDir(lw, d, "")
}

// upperDir writes everything in the upper directory d, whose path in the layer is rel.
func upperDir(lw *layerWriter, d *dirHandle, rel string) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	for _, name := range names {
		if skipName(rel, name) {
			continue
		}
		e, err := d.lstat(name)
		if vanished(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("changes: %w", err)
		}
		p := joinRel(rel, name)
		switch e.kind {
		case kindWhiteout:
			err = lw.whiteout(p)
		case kindDir:
			err = upperSubdir(lw, d, name, p, e)
		case kindFile:
			err = upperFile(lw, d, name, p)
		case kindSymlink:
			err = lw.symlink(p, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func upperSubdir(lw *layerWriter, d *dirHandle, name, p string, e entry) error {
	sub, err := d.openDir(name)
	if vanished(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	defer sub.close()
	opaque, err := overlayDir(sub)
	if err != nil {
		return err
	}
	if err := lw.dir(p, e); err != nil {
		return err
	}
	if opaque {
		if err := lw.opaque(p); err != nil {
			return err
		}
	}
	return upperDir(lw, sub, p)
}

// upperFile writes a regular file of the upper layer, refusing one whose content overlayfs
// keeps in a lower layer (metacopy).
func upperFile(lw *layerWriter, d *dirHandle, name, p string) error {
	return writeFile(lw, d, name, p, func(f *os.File) error {
		for _, attr := range metacopyXattrs {
			_, ok, err := fxattr(int(f.Fd()), f.Name(), attr)
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("changes: %s holds only metadata, its content is in a lower layer: mount the overlay with metacopy=off", f.Name())
			}
		}
		return nil
	})
}

// overlayDir reports whether the upper directory d is opaque. It fails on a directory that
// overlayfs renamed (redirect_dir), whose contents are elsewhere in the lower layers.
func overlayDir(d *dirHandle) (opaque bool, err error) {
	for _, attr := range redirectXattrs {
		_, ok, err := d.xattr(attr)
		if err != nil {
			return false, err
		}
		if ok {
			return false, fmt.Errorf("changes: %s was renamed by overlayfs, its contents are in a lower layer: mount the overlay with redirect_dir=off", d.f.Name())
		}
	}
	for _, attr := range opaqueXattrs {
		v, _, err := d.xattr(attr)
		if err != nil {
			return false, err
		}
		// Since Linux 6.7 the value "x" marks a directory holding xattr whiteouts, which
		// is not opaque: only "y" is.
		if v == "y" {
			return true, nil
		}
	}
	return false, nil
}
