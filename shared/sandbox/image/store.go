// Package image turns an OCI image into directories that a local sandbox can stack as overlayfs
// lower layers: it resolves a reference, fetches what is missing and unpacks each layer once
// into a cache shared read-only between sandboxes.
//
// The cache directory holds
//
//	layers/<diff ID hex>/      one unpacked layer, in overlayfs form (whiteouts as 0/0 character
//	                           devices, opaque directories marked trusted.overlay.opaque=y)
//	images/<digest hex>.json   what an image needs besides its layers: config and layer list
//	layers/.tmp-*, images/.tmp-*  work in progress; NewStore removes what a crash left behind
//
// Layers are keyed by diff ID (the digest of the uncompressed tar), not by blob digest, so the
// same content pulled gzipped from a registry and read uncompressed from a docker-save tarball
// shares one directory; unpacking checks the stream against the diff ID.
//
// Unpacking decisions, for an image that may be hostile:
//   - An entry with an absolute name, a name or hard link target that leaves the layer (".."),
//     a parent that is a symlink or not a directory, or a non-directory at the layer's root
//     fails the layer with ErrUnsafeLayer. Nothing is written through a symlink: parents are
//     checked with Lstat and files are always created anew (O_EXCL|O_NOFOLLOW), never opened
//     for writing in place.
//   - Character and block devices are skipped: sandboxes get their own /dev, and a device node
//     in the shared cache would reach host hardware from any mount that forgets nodev. A
//     character device 0/0 in the tar is a device too, so a layer cannot smuggle in a raw
//     overlayfs whiteout. FIFOs are kept.
//   - Owners (uid/gid) and mode bits, setuid, setgid and sticky included, are kept: images rely
//     on files owned by their service users, and sandboxes mount with nosuid, which neutralises
//     setuid bits. The layers directory is mode 0700 so that no host user can reach a setuid
//     binary or anything else in the cache outside a sandbox.
//   - Extended attributes recorded in the tar (PAX SCHILY.xattr.*) are not applied: trusted.*
//     would let a layer steer overlayfs (opaque, redirect, metacopy), security.capability has no
//     effect under nosuid, and images do not use user.*.
//   - Modification and access times are kept for everything, symlinks included, so that
//     Python's .pyc checks and make see what the image builder saw.
//   - MaxLayerBytes bounds both a layer's uncompressed stream and the file content it expands
//     to (a sparse file expands to more than its stream).
//
// The store needs root: chown, mknod for whiteouts and trusted.* xattrs all require it. One
// Store owns its directory: NewStore removes other processes' work in progress.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrUnsafeLayer is returned when a layer tries to write outside its directory or through a
// symlink, or to replace the layer's root.
var ErrUnsafeLayer = errors.New("unsafe layer")

// ErrLayerTooLarge is returned when a layer's uncompressed size passes Options.MaxLayerBytes.
var ErrLayerTooLarge = errors.New("layer too large")

// ErrDigestMismatch is returned when a layer's uncompressed content does not have the diff ID
// that the image config promises.
var ErrDigestMismatch = errors.New("layer digest mismatch")

// DefaultMaxLayerBytes is the default bound on one layer's uncompressed size.
const DefaultMaxLayerBytes int64 = 8 << 30

// parallelLayers is how many layers of one image are fetched and unpacked at once.
const parallelLayers = 4

// tmpPrefix starts the name of every directory or file that is not complete yet.
const tmpPrefix = ".tmp-"

// Options configure a Store. The zero value is usable.
type Options struct {
	// Insecure allows plain-HTTP registries. Registries on the loopback, "localhost:" and
	// private (RFC 1918) addresses may always fall back to plain HTTP.
	Insecure bool
	// Keychain finds registry credentials; nil means authn.DefaultKeychain, which reads the
	// Docker config file when there is one and is anonymous otherwise.
	Keychain authn.Keychain
	// MaxLayerBytes bounds a layer's uncompressed size; 0 means DefaultMaxLayerBytes.
	MaxLayerBytes int64
}

func (o Options) withDefaults() Options {
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = DefaultMaxLayerBytes
	}
	return o
}

// Store unpacks image layers into a cache directory, each layer once per digest.
type Store struct {
	dir   string
	opts  Options
	locks keyLocks
}

// Image is an image ready to run: its layers' directories, lowest first, and its config.
type Image struct {
	// Ref is the reference Get was asked for.
	Ref string
	// Digest is the manifest's digest (sha256:...). A docker-save tarball has no manifest of
	// its own (computing one would mean recompressing every layer), so for a docker-archive
	// ref it is the config's digest, the image ID that docker prints.
	Digest string
	// Layers are absolute directories, lowest layer first, read-only by convention. Overlayfs
	// wants them the other way round: lowerdir=Layers[n-1]:...:Layers[0]. A layer that the
	// image holds more than once is listed once, at its uppermost place.
	Layers []string
	// Env is the image config's Env.
	Env []string
	// WorkDir is the image config's WorkingDir.
	WorkDir string
	// User is the image config's User.
	User string
}

// NewStore opens the cache in dir, creating it if needed, and removes the work in progress
// that a crash left behind.
func NewStore(dir string, opts Options) (*Store, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts.withDefaults()}
	for _, d := range []string{dir, s.layersDir(), s.imagesDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// MkdirAll leaves an existing directory's mode alone; this one must stay closed.
	if err := os.Chmod(s.layersDir(), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, d := range []string{s.layersDir(), s.imagesDir()} {
		if err := removeTemps(d); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return s, nil
}

func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) layersDir() string { return filepath.Join(s.dir, "layers") }
func (s *Store) imagesDir() string { return filepath.Join(s.dir, "images") }

// Get resolves ref and returns it unpacked, fetching and unpacking only the layers not yet in
// the cache. ref is one of:
//   - a registry reference, "registry.example/repo:tag" or "localhost:5000/x@sha256:...";
//     a multi-platform index resolves to linux and this host's architecture, and a digest
//     reference whose image is already in the store needs no registry at all;
//   - "oci:<dir>[:<tag or digest>]", an OCI image layout directory; the tag is matched against
//     the org.opencontainers.image.ref.name annotation, and without one the layout must hold
//     a single image (or index);
//   - "docker-archive:<file.tar>[:<repo:tag>]", a `docker save` tarball; without a tag the
//     tarball must hold a single image.
//
// Concurrent Gets of the same image or layer unpack it once.
func (s *Store) Get(ctx context.Context, ref string) (*Image, error) {
	if h, ok := s.pinned(ref); ok {
		if im, ok := s.cached(ref, h); ok {
			return im, nil
		}
	}
	src, err := s.open(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if src.remember {
		if im, ok := s.cached(ref, src.digest); ok {
			return im, nil
		}
	}
	rec, err := s.unpackImage(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if src.remember {
		if err := s.writeRecord(rec); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	return s.image(ref, rec), nil
}

// record is what images/<digest hex>.json holds: everything an Image needs besides the layer
// directories themselves.
type record struct {
	Digest  string   `json:"digest"`
	DiffIDs []string `json:"diffIDs"` // lowest first
	Env     []string `json:"env,omitempty"`
	WorkDir string   `json:"workDir,omitempty"`
	User    string   `json:"user,omitempty"`
}

// unpackImage reads src's config and makes sure each of its layers is in the store.
func (s *Store) unpackImage(ctx context.Context, src source) (record, error) {
	cf, err := src.img.ConfigFile()
	if err != nil {
		return record{}, fmt.Errorf("config: %w", err)
	}
	layers, err := src.img.Layers()
	if err != nil {
		return record{}, fmt.Errorf("layers: %w", err)
	}
	diffIDs := cf.RootFS.DiffIDs
	if len(layers) != len(diffIDs) {
		return record{}, fmt.Errorf("manifest has %d layers but config has %d diff IDs", len(layers), len(diffIDs))
	}
	rec := record{
		Digest:  src.digest.String(),
		Env:     cf.Config.Env,
		WorkDir: cf.Config.WorkingDir,
		User:    cf.Config.User,
	}
	for _, d := range diffIDs {
		if d.Algorithm != "sha256" || !isHex64(d.Hex) {
			return record{}, fmt.Errorf("unsupported diff ID %q", d)
		}
		rec.DiffIDs = append(rec.DiffIDs, d.String())
	}
	// A few layers download and unpack at a time: the network and the disk both gain from
	// overlap, and a hundred-layer image should not open a hundred connections.
	errs := make([]error, len(layers))
	sem := make(chan struct{}, parallelLayers)
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.ensureLayer(ctx, diffIDs[i], l)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return record{}, err
	}
	return rec, nil
}

// ensureLayer unpacks l into layers/<diff ID hex> unless it is there already. Within this
// process a per-layer lock makes concurrent callers wait for one unpacking; across processes
// each unpacks into its own temporary directory and the first rename wins.
func (s *Store) ensureLayer(ctx context.Context, diffID v1.Hash, l v1.Layer) error {
	final := filepath.Join(s.layersDir(), diffID.Hex)
	if isDir(final) {
		return nil
	}
	unlock, err := s.locks.lock(ctx, diffID.Hex)
	if err != nil {
		return err
	}
	defer unlock()
	if isDir(final) {
		return nil
	}
	tmp, err := os.MkdirTemp(s.layersDir(), tmpPrefix+diffID.Hex[:12]+"-")
	if err != nil {
		return err
	}
	if err := unpackLayer(ctx, tmp, l, diffID, s.opts.MaxLayerBytes); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		if isDir(final) {
			return nil
		}
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	return nil
}

// cached returns the image stored under digest h if its record and all its layers are there.
func (s *Store) cached(ref string, h v1.Hash) (*Image, bool) {
	if h.Algorithm != "sha256" || !isHex64(h.Hex) {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(s.imagesDir(), h.Hex+".json"))
	if err != nil {
		return nil, false
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.Digest != h.String() {
		return nil, false
	}
	im := s.image(ref, rec)
	if im == nil {
		return nil, false
	}
	for _, d := range im.Layers {
		if !isDir(d) {
			return nil, false
		}
	}
	return im, true
}

func (s *Store) writeRecord(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	h, err := v1.NewHash(rec.Digest)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.imagesDir(), tmpPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(s.imagesDir(), h.Hex+".json"))
}

// image builds the Image for rec, or returns nil if rec names a layer it should not.
func (s *Store) image(ref string, rec record) *Image {
	im := &Image{Ref: ref, Digest: rec.Digest, Env: rec.Env, WorkDir: rec.WorkDir, User: rec.User}
	for i, d := range rec.DiffIDs {
		hex, ok := strings.CutPrefix(d, "sha256:")
		if !ok || !isHex64(hex) {
			return nil
		}
		// Overlayfs refuses a directory twice among its lower layers. A layer's lower
		// occurrence adds nothing that its upper one does not (every name it holds is
		// decided by the upper one first), so only the uppermost is kept.
		if slices.Contains(rec.DiffIDs[i+1:], d) {
			continue
		}
		im.Layers = append(im.Layers, filepath.Join(s.layersDir(), hex))
	}
	return im
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// keyLocks is a set of mutexes by name whose waits end with their context.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when released
}

func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		k.mu.Lock()
		wait, busy := k.held[key]
		if !busy {
			if k.held == nil {
				k.held = map[string]chan struct{}{}
			}
			done := make(chan struct{})
			k.held[key] = done
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(done)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
