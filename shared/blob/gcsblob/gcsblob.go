// Package gcsblob is the blob port on a Cloud Storage bucket (the GCP backend). A value is the
// object sha256/<hex>. It is uploaded to a temporary object first, because its digest is known
// only once it has all been read, then copied to its name if no object has it yet (the copy is
// server-side: nothing is uploaded twice), and the temporary object deleted.
package gcsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/ids"
)

// Store keeps values in one bucket.
type Store struct {
	bucket *storage.BucketHandle
}

var _ blob.Store = (*Store)(nil)

// New uses bucket through client.
func New(client *storage.Client, bucket string) *Store {
	return &Store{bucket: client.Bucket(bucket)}
}

func object(ref blob.Ref) (string, error) {
	h, err := ref.Hex()
	if err != nil {
		return "", err
	}
	return "sha256/" + h, nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, r io.Reader) (blob.Ref, error) {
	tmp := s.bucket.Object("uploads/" + ids.New())
	w := tmp.NewWriter(ctx)
	hashing := blob.NewHashing(r)
	if _, err := io.Copy(w, hashing); err != nil {
		w.Close()
		return blob.Ref{}, fmt.Errorf("blob store: upload: %w", err)
	}
	if err := w.Close(); err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: upload: %w", err)
	}
	defer tmp.Delete(context.WithoutCancel(ctx))
	ref := hashing.Ref()
	name, _ := object(ref)
	dst := s.bucket.Object(name).If(storage.Conditions{DoesNotExist: true})
	if _, err := dst.CopierFrom(tmp).Run(ctx); err != nil && !preconditionFailed(err) {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	return ref, nil
}

// preconditionFailed: the object existed already, so the same bytes are stored.
func preconditionFailed(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	name, err := object(ref)
	if err != nil {
		return nil, err
	}
	r, err := s.bucket.Object(name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, ref.Digest)
	}
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return blob.Checked(r, ref), nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, ref blob.Ref) error {
	name, err := object(ref)
	if err != nil {
		return err
	}
	if err := s.bucket.Object(name).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}
