package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
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

// withArchiveFile returns spec with its environment's archive as a file of this machine
// (Env.Archive): an archive of the blob store is read where it lies when the store is a
// directory (fsblob: a read-only file named by its digest), or copied once, checked against
// its digest, under envsDir. An archive given as a path (imports before the blob store) is
// used as it is.
func (r *Runtime) withArchiveFile(ctx context.Context, spec sandbox.Spec) (sandbox.Spec, error) {
	ref := spec.Env.ArchiveRef
	if ref == nil || spec.Env.Image != "" {
		return spec, nil
	}
	if spec.Blobs == nil {
		return spec, fmt.Errorf("environment archive %s: no blob store to read it from", ref.Digest)
	}
	if fs, ok := spec.Blobs.(interface {
		Path(blob.Ref) (string, error)
	}); ok {
		p, err := fs.Path(*ref)
		if err != nil {
			return spec, fmt.Errorf("environment archive: %w", err)
		}
		spec.Env.Archive = p
		return spec, nil
	}
	h, err := ref.Hex()
	if err != nil {
		return spec, err
	}
	dir := filepath.Join(r.envsDir(), "archives")
	dst := filepath.Join(dir, h+".tar.gz")
	if _, err := os.Stat(dst); err == nil {
		spec.Env.Archive = dst
		return spec, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return spec, err
	}
	rc, err := spec.Blobs.Get(ctx, *ref)
	if err != nil {
		return spec, fmt.Errorf("environment archive: %w", err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, "copying-")
	if err != nil {
		return spec, err
	}
	defer os.Remove(tmp.Name()) // renamed away on success
	_, err = io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return spec, fmt.Errorf("environment archive %s: %w", ref.Digest, err)
	}
	spec.Env.Archive = dst
	return spec, nil
}
