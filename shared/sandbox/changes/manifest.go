package changes

import (
	"fmt"
	"io"
)

// Manifest is what a tree looked like at one moment (per path: type, permission bits, size,
// modification time, symlink target), without its contents. A sandbox without a pristine copy
// of its tree (Cloud Run) takes one at start and later finds what changed.
//
// A file rewritten with the same size and modification time looks unchanged; that takes a
// deliberate effort (touch -d), and all it can do is drop the agent's own change.
type Manifest struct {
	root *manifestDir
}

// manifestDir is one directory of a manifest: what each name in it was and, for
// subdirectories, what they held.
type manifestDir struct {
	entries map[string]entry
	subdirs map[string]*manifestDir
}

// Snapshot records the tree at root (without its .git) as a manifest.
func Snapshot(root string) (*Manifest, error) {
	d, err := openTree(root)
	if err != nil {
		return nil, err
	}
	defer d.close()
	dir, err := snapshotDir(d, "")
	if err != nil {
		return nil, err
	}
	return &Manifest{root: dir}, nil
}

func snapshotDir(d *dirHandle, rel string) (*manifestDir, error) {
	entries, err := d.entries(rel)
	if err != nil {
		return nil, err
	}
	m := &manifestDir{entries: entries, subdirs: map[string]*manifestDir{}}
	for name, e := range entries {
		if e.kind != kindDir {
			continue
		}
		sub, err := d.openDir(name)
		if vanished(err) {
			delete(m.entries, name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		m.subdirs[name], err = snapshotDir(sub, joinRel(rel, name))
		sub.close()
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Diff writes the layer of the changes of the tree at root since the snapshot: entries whose
// type, permission bits, size, modification time or symlink target differ, new ones, and
// whiteouts for the deleted ones (a deleted directory is one whiteout, not one per child).
// Directories are compared by type and permission bits only: their modification time changes
// with their contents, which the walk compares one by one.
func (m *Manifest) Diff(w io.Writer, root string, lim Limits) (Summary, error) {
	d, err := openTree(root)
	if err != nil {
		return Summary{}, err
	}
	defer d.close()
	lw := newLayerWriter(w, lim)
	if err := diffDir(lw, manifestBase{m.root}, d, ""); err != nil {
		return lw.sum, err
	}
	return lw.sum, lw.close()
}

// manifestBase is a directory of a manifest, as the base of a comparison.
type manifestBase struct{ d *manifestDir }

func (b manifestBase) entries(string) (map[string]entry, error) { return b.d.entries, nil }

func (b manifestBase) sub(name string) (base, error) { return manifestBase{b.d.subdirs[name]}, nil }

func (b manifestBase) close() {}

func (b manifestBase) changed(_ string, was, now entry, _ *dirHandle) (bool, error) {
	return was.perm != now.perm || was.size != now.size || was.mtime != now.mtime, nil
}
