// Package blob is the port for values too large for an event or a Firestore document (command
// output past a threshold, verification reports, environment archives, agent-job results): they
// are stored by content, and an event holds their Ref. Two adapters: fsblob (a directory, the
// embedded default) and gcsblob (a Cloud Storage bucket).
//
// Content addressing makes every write idempotent: a redelivered event that stores the same
// bytes again finds them there, and two writers of the same value never conflict.
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Ref names stored bytes: their digest and size. It is what an event keeps.
type Ref struct {
	Digest string `json:"digest"` // "sha256:<64 hex digits>"
	Size   int64  `json:"size"`
}

// Store holds immutable values by content.
type Store interface {
	// Put stores what r yields and returns its Ref; storing bytes already there is a no-op.
	Put(ctx context.Context, r io.Reader) (Ref, error)
	// Get opens the bytes of ref. Reading them to the end checks them against the digest: a
	// mismatch is ErrCorrupt. Unknown bytes are ErrNotFound.
	Get(ctx context.Context, ref Ref) (io.ReadCloser, error)
	// Delete removes the bytes of ref; bytes already gone are not an error.
	Delete(ctx context.Context, ref Ref) error
}

// Signer is a store whose values can be read, for a while, through a URL that carries its own
// credential: how a sandbox, which holds no credentials, downloads its environment archive.
type Signer interface {
	// SignedURL is a URL that answers a plain GET with the bytes of ref until ttl has passed.
	// Bytes that are not stored are ErrNotFound.
	SignedURL(ctx context.Context, ref Ref, ttl time.Duration) (string, error)
}

// Inbox is a store that takes bytes from a holder of a signed URL under a name its owner chose,
// for a writer that has no credentials and cannot know a digest in advance (an agent job's
// runner on Cloud Run PUTs its result there), and then keeps them by content.
type Inbox interface {
	// UploadURL is a URL that takes a plain PUT of the bytes to keep under name until ttl has
	// passed.
	UploadURL(ctx context.Context, name string, ttl time.Duration) (string, error)
	// Collect stores by content what was uploaded under name and returns its Ref; ErrNotFound
	// when nothing was. Collecting twice gives the same Ref.
	Collect(ctx context.Context, name string) (Ref, error)
}

var (
	// ErrNotFound: no bytes with that digest are stored.
	ErrNotFound = errors.New("blob: not found")
	// ErrCorrupt: the bytes read do not match the Ref.
	ErrCorrupt = errors.New("blob: stored bytes do not match their digest")
)

// Hex is the hex digest of ref, checked: a Ref from an event is input, and it names a file or
// an object.
func (ref Ref) Hex() (string, error) {
	h, ok := strings.CutPrefix(ref.Digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" || ref.Size < 0 {
		return "", fmt.Errorf("blob: %q is not a sha256 digest", ref.Digest)
	}
	return h, nil
}

// Hashing wraps a reader to compute the Ref of what it yields.
type Hashing struct {
	r    io.Reader
	h    hash.Hash
	size int64
}

// NewHashing hashes what r yields as it is read.
func NewHashing(r io.Reader) *Hashing { return &Hashing{r: r, h: sha256.New()} }

func (x *Hashing) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	x.h.Write(p[:n])
	x.size += int64(n)
	return n, err
}

// Ref is the reference of what has been read so far.
func (x *Hashing) Ref() Ref {
	return Ref{Digest: "sha256:" + hex.EncodeToString(x.h.Sum(nil)), Size: x.size}
}

// Checked wraps the bytes of ref as read from a store: at their end it fails with ErrCorrupt
// when they are not what ref names.
func Checked(rc io.ReadCloser, ref Ref) io.ReadCloser {
	return &checked{rc: rc, hashing: NewHashing(rc), want: ref}
}

type checked struct {
	rc      io.ReadCloser
	hashing *Hashing
	want    Ref
}

func (c *checked) Read(p []byte) (int, error) {
	n, err := c.hashing.Read(p)
	if c.hashing.size > c.want.Size {
		return n, ErrCorrupt
	}
	if err == io.EOF && c.hashing.Ref() != c.want {
		return n, ErrCorrupt
	}
	return n, err
}

func (c *checked) Close() error { return c.rc.Close() }

// PutBytes stores b.
func PutBytes(ctx context.Context, s Store, b []byte) (Ref, error) {
	return s.Put(ctx, bytes.NewReader(b))
}

// ReadAll reads the bytes of ref whole, checked.
func ReadAll(ctx context.Context, s Store, ref Ref) ([]byte, error) {
	rc, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
