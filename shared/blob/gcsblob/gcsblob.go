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
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/ids"
)

// Store keeps values in one bucket.
type Store struct {
	bucket *storage.BucketHandle
	// Signing is the base of every signed URL's options (tests: a key of their own, the fake's
	// host); nil lets the client find the signer in its credentials: a key file's, or on GCP
	// the instance's service account through the IAM signBlob API, which needs that account
	// to hold roles/iam.serviceAccountTokenCreator on itself.
	Signing *storage.SignedURLOptions
}

var (
	_ blob.Store  = (*Store)(nil)
	_ blob.Signer = (*Store)(nil)
	_ blob.Inbox  = (*Store)(nil)
)

// inbox is the prefix of the objects uploaded through UploadURL.
const inbox = "inbox/"

// UploadURL implements blob.Inbox: a V4 signed PUT of the object inbox/<name>.
func (s *Store) UploadURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	opts := storage.SignedURLOptions{}
	if s.Signing != nil {
		opts = *s.Signing
	}
	opts.Method, opts.Scheme, opts.Expires = http.MethodPut, storage.SigningSchemeV4, time.Now().Add(min(ttl, MaxSignedURLTTL))
	u, err := s.bucket.SignedURL(inbox+name, &opts)
	if err != nil {
		return "", fmt.Errorf("blob store: sign an upload URL of %s: %w", name, err)
	}
	return u, nil
}

// Collect implements blob.Inbox: the uploaded object is stored by content (Put) and left in
// place, so that collecting again gives the same Ref; a lifecycle rule on inbox/ may age it out.
func (s *Store) Collect(ctx context.Context, name string) (blob.Ref, error) {
	r, err := s.bucket.Object(inbox + name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return blob.Ref{}, fmt.Errorf("%w: %s", blob.ErrNotFound, inbox+name)
	}
	if err != nil {
		return blob.Ref{}, fmt.Errorf("blob store: %w", err)
	}
	defer r.Close()
	return s.Put(ctx, r)
}

// MaxSignedURLTTL is the longest a V4 signed URL lives.
const MaxSignedURLTTL = 7 * 24 * time.Hour

// SignedURL implements blob.Signer: a V4 signed GET of the value's object, for at most
// MaxSignedURLTTL.
func (s *Store) SignedURL(ctx context.Context, ref blob.Ref, ttl time.Duration) (string, error) {
	name, err := object(ref)
	if err != nil {
		return "", err
	}
	// Checked here: a URL of nothing would fail only inside the sandbox, later and far away.
	if _, err := s.bucket.Object(name).Attrs(ctx); errors.Is(err, storage.ErrObjectNotExist) {
		return "", fmt.Errorf("%w: %s", blob.ErrNotFound, ref.Digest)
	} else if err != nil {
		return "", fmt.Errorf("blob store: %w", err)
	}
	opts := storage.SignedURLOptions{}
	if s.Signing != nil {
		opts = *s.Signing
	}
	opts.Method, opts.Scheme, opts.Expires = http.MethodGet, storage.SigningSchemeV4, time.Now().Add(min(ttl, MaxSignedURLTTL))
	u, err := s.bucket.SignedURL(name, &opts)
	if err != nil {
		return "", fmt.Errorf("blob store: sign a URL of %s: %w", ref.Digest, err)
	}
	return u, nil
}

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
