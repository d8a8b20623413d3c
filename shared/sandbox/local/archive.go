package local

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/codeset/codeset/shared/sandbox/envarchive"
)

// unpack extracts the tar.gz at archive into dest (envarchive's safe unpacking).
func unpack(archive, dest string) error { return envarchive.UnpackFile(archive, dest) }

// workTree is the repository inside an unpacked archive (envarchive.WorkTree).
func workTree(root string) string { return envarchive.WorkTree(root) }

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
