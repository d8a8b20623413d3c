package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/codeset/codeset/shared/blob"
	"github.com/codeset/codeset/shared/sandbox"
)

// once opens a value on its first use. Unlike sync.Once it keeps no failure: the caller that
// met it gets the error and the next caller tries again, so one transient error during a cold
// start does not break a function instance for its whole life.
type once[T any] struct {
	open func() (T, error)
	mu   sync.Mutex
	v    T
	done bool
}

func (o *once[T]) get() (T, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return o.v, nil
	}
	v, err := o.open()
	if err != nil {
		return v, err
	}
	o.v, o.done = v, true
	return v, nil
}

// opened returns the value if it was opened, without opening it.
func (o *once[T]) opened() (T, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.v, o.done
}

// lazyRuntime is the sandbox runtime opened on first use: the local runtime probes the kernel
// (namespaces, overlays) and the Cloud Run one builds an Admin API client, which only the
// functions that start, reach or stop sandboxes need.
type lazyRuntime struct{ once[sandbox.Runtime] }

var (
	_ sandbox.Runtime   = (*lazyRuntime)(nil)
	_ sandbox.Inventory = (*lazyRuntime)(nil)
)

func (l *lazyRuntime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Info, error) {
	rt, err := l.get()
	if err != nil {
		return sandbox.Info{}, err
	}
	return rt.Start(ctx, spec)
}

func (l *lazyRuntime) Stop(ctx context.Context, info sandbox.Info) error {
	rt, err := l.get()
	if err != nil {
		return err
	}
	return rt.Stop(ctx, info)
}

func (l *lazyRuntime) Alive(ctx context.Context, info sandbox.Info) bool {
	rt, err := l.get()
	return err == nil && rt.Alive(ctx, info)
}

func (l *lazyRuntime) Client(info sandbox.Info) sandbox.Client {
	rt, err := l.get()
	if err != nil {
		return sandbox.Unreachable(err)
	}
	return rt.Client(info)
}

func (l *lazyRuntime) StartVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, req sandbox.VerifyRequest, id string) error {
	rt, err := l.get()
	if err != nil {
		return err
	}
	return rt.StartVerify(ctx, info, spec, req, id)
}

func (l *lazyRuntime) AwaitVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string, wait time.Duration) (sandbox.VerifyResult, bool, error) {
	rt, err := l.get()
	if err != nil {
		return sandbox.VerifyResult{}, false, err
	}
	return rt.AwaitVerify(ctx, info, spec, id, wait)
}

func (l *lazyRuntime) StopVerify(ctx context.Context, info sandbox.Info, spec sandbox.Spec, id string) error {
	rt, err := l.get()
	if err != nil {
		return err
	}
	return rt.StopVerify(ctx, info, spec, id)
}

// List lists what the runtime runs; a runtime that cannot list lists nothing.
func (l *lazyRuntime) List(ctx context.Context) ([]sandbox.Listed, error) {
	rt, err := l.get()
	if err != nil {
		return nil, err
	}
	if inv, ok := rt.(sandbox.Inventory); ok {
		return inv.List(ctx)
	}
	return nil, nil
}

func (l *lazyRuntime) Reclaim(ctx context.Context, s sandbox.Listed) error {
	rt, err := l.get()
	if err != nil {
		return err
	}
	if inv, ok := rt.(sandbox.Inventory); ok {
		return inv.Reclaim(ctx, s)
	}
	return nil
}

// Describe says how sandboxes run (opening the runtime), for the start-up log.
func (l *lazyRuntime) Describe() string {
	rt, err := l.get()
	if err != nil {
		return "no sandbox runtime: " + err.Error()
	}
	if d, ok := rt.(interface{ Describe() string }); ok {
		return d.Describe()
	}
	return ""
}

// DescribeLimits says what each sandbox may use, when the runtime says.
func (l *lazyRuntime) DescribeLimits() string {
	rt, err := l.get()
	if err != nil {
		return ""
	}
	if d, ok := rt.(interface{ DescribeLimits() string }); ok {
		return d.DescribeLimits()
	}
	return ""
}

// close closes the runtime if it was opened and holds a client.
func (l *lazyRuntime) close() error {
	if rt, ok := l.opened(); ok {
		if c, ok := rt.(interface{ Close() error }); ok {
			return c.Close()
		}
	}
	return nil
}

// lazyBlobs is a blob store whose client is made on first use (Cloud Storage's looks up
// credentials), for the functions that store or read large values only.
type lazyBlobs struct{ once[blob.Store] }

var (
	_ blob.Store  = (*lazyBlobs)(nil)
	_ blob.Inbox  = (*lazyBlobs)(nil)
	_ blob.Signer = (*lazyBlobs)(nil)
)

// SignedURL implements blob.Signer when the store it opens does (Cloud Run sandboxes download
// their environment archive by one).
func (l *lazyBlobs) SignedURL(ctx context.Context, ref blob.Ref, ttl time.Duration) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	sg, ok := s.(blob.Signer)
	if !ok {
		return "", fmt.Errorf("the blob store %T cannot sign URLs: %w", s, errors.ErrUnsupported)
	}
	return sg.SignedURL(ctx, ref, ttl)
}

// UploadURL implements blob.Inbox when the store it opens does.
func (l *lazyBlobs) UploadURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	in, ok := s.(blob.Inbox)
	if !ok {
		return "", fmt.Errorf("the blob store %T takes no uploads: %w", s, errors.ErrUnsupported)
	}
	return in.UploadURL(ctx, name, ttl)
}

// Collect implements blob.Inbox when the store it opens does: one that takes no uploads has
// none (ErrNotFound).
func (l *lazyBlobs) Collect(ctx context.Context, name string) (blob.Ref, error) {
	s, err := l.get()
	if err != nil {
		return blob.Ref{}, err
	}
	in, ok := s.(blob.Inbox)
	if !ok {
		return blob.Ref{}, fmt.Errorf("%w: the blob store %T takes no uploads", blob.ErrNotFound, s)
	}
	return in.Collect(ctx, name)
}

func (l *lazyBlobs) Put(ctx context.Context, r io.Reader) (blob.Ref, error) {
	s, err := l.get()
	if err != nil {
		return blob.Ref{}, err
	}
	return s.Put(ctx, r)
}

func (l *lazyBlobs) Get(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, ref)
}

func (l *lazyBlobs) Delete(ctx context.Context, ref blob.Ref) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Delete(ctx, ref)
}
