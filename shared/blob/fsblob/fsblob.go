// Package fsblob is the blob port on a local directory (the embedded default: <data>/blobs).
// Each value is a read-only file named by its digest, written to a temporary file first and
// renamed into place, so a crash never leaves a partial value under a digest.
package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/codeset/codeset/shared/blob"
)

// Store keeps values under Dir/sha256/<first two hex digits>/<hex>.
type Store struct {
	dir string
}

var _ blob.Store = (*Store)(nil)

// New opens (creating) the store in dir.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(ref blob.Ref) (string, error) {
	h, err := ref.Hex()
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, "sha256", h[:2], h), nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, r io.Reader) (blob.Ref, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-")
	if err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; left behind only by a failure
	hashing := blob.NewHashing(r)
	if _, err := io.Copy(tmp, hashing); err != nil {
		tmp.Close()
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	ref := hashing.Ref()
	final, _ := s.path(ref)
	if _, err := os.Stat(final); err == nil {
		return ref, nil // stored already
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o400); err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	return ref, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	p, err := s.path(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, ref.Digest)
	}
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return blob.Checked(f, ref), nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, ref blob.Ref) error {
	p, err := s.path(ref)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}

// Path is the file holding the bytes of ref (ErrNotFound when there is none), for a reader on
// this machine that needs a file rather than a stream: the local runtime unpacks an environment
// archive from where it lies instead of copying it. The file is read-only and never changes.
func (s *Store) Path(ref blob.Ref) (string, error) {
	p, err := s.path(ref)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: %s", blob.ErrNotFound, ref.Digest)
		}
		return "", fmt.Errorf("blob store: %w", err)
	}
	return p, nil
}
