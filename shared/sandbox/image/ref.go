package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	layoutPrefix  = "oci:"
	archivePrefix = "docker-archive:"
	// refNameAnnotation is where an OCI layout's index.json names a manifest's tag.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// hostPlatform is the platform picked from multi-platform indexes: sandboxes run Linux
// binaries natively.
var hostPlatform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// source is a resolved image and the digest that names it in the store.
type source struct {
	img    v1.Image
	digest v1.Hash
	// remember says whether digest names the manifest, so that images/ may record it.
	remember bool
}

// open resolves ref to an image without reading its layers.
func (s *Store) open(ctx context.Context, ref string) (source, error) {
	switch {
	case strings.HasPrefix(ref, layoutPrefix):
		dir, sel := splitLocal(strings.TrimPrefix(ref, layoutPrefix))
		return openLayout(dir, sel)
	case strings.HasPrefix(ref, archivePrefix):
		file, sel := splitLocal(strings.TrimPrefix(ref, archivePrefix))
		return openArchive(file, sel)
	default:
		return s.openRemote(ctx, ref)
	}
}

// pinned returns the digest of a registry reference that names one, so that Get can find the
// image in the store without asking the registry.
func (s *Store) pinned(ref string) (v1.Hash, bool) {
	if strings.HasPrefix(ref, layoutPrefix) || strings.HasPrefix(ref, archivePrefix) {
		return v1.Hash{}, false
	}
	r, err := name.ParseReference(ref, s.nameOptions()...)
	if err != nil {
		return v1.Hash{}, false
	}
	d, ok := r.(name.Digest)
	if !ok {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(d.DigestStr())
	return h, err == nil
}

func (s *Store) nameOptions() []name.Option {
	if s.opts.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (s *Store) openRemote(ctx context.Context, ref string) (source, error) {
	r, err := name.ParseReference(ref, s.nameOptions()...)
	if err != nil {
		return source{}, err
	}
	img, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.opts.Keychain),
		remote.WithPlatform(hostPlatform),
	)
	if err != nil {
		return source{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return source{}, err
	}
	return source{img: img, digest: h, remember: true}, nil
}

// splitLocal splits "<path>[:<selector>]". The path may itself hold colons and the selector
// may be a digest ("sha256:..."), so the split is at the first colon before which an existing
// file stands; a path that does not exist is returned whole for the opener to report.
func splitLocal(s string) (path, sel string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := range len(s) {
		if s[i] != ':' {
			continue
		}
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func openArchive(file, tag string) (source, error) {
	var t *name.Tag
	if tag != "" {
		nt, err := name.NewTag(tag)
		if err != nil {
			return source{}, err
		}
		t = &nt
	}
	img, err := tarball.ImageFromPath(file, t)
	if err != nil {
		return source{}, err
	}
	h, err := img.ConfigName()
	if err != nil {
		return source{}, err
	}
	return source{img: img, digest: h}, nil
}

func openLayout(dir, sel string) (source, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return source{}, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return source{}, err
	}
	match := func(v1.Descriptor) bool { return true }
	if h, err := v1.NewHash(sel); err == nil {
		match = func(d v1.Descriptor) bool { return d.Digest == h }
	} else if sel != "" {
		match = func(d v1.Descriptor) bool { return d.Annotations[refNameAnnotation] == sel }
	}
	img, err := pick(idx, match, true)
	if err != nil {
		return source{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return source{}, err
	}
	return source{img: img, digest: h, remember: true}, nil
}

// errNoImage is returned by pick when an index holds no image that matches.
var errNoImage = errors.New("no image matches")

// pick returns the one image of idx that match selects, narrowing several to this platform
// and descending into a selected nested index by platform. A digest may also name an image
// inside a nested index, so when nothing at this level matches and search is set, pick looks
// inside the nested indexes with the same match.
func pick(idx v1.ImageIndex, match func(v1.Descriptor) bool, search bool) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []v1.Descriptor
	for _, d := range m.Manifests {
		if (d.MediaType.IsImage() || d.MediaType.IsIndex()) && match(d) {
			found = append(found, d)
		}
	}
	if len(found) > 1 {
		found = onHostPlatform(found)
	}
	switch {
	case len(found) > 1:
		return nil, fmt.Errorf("%d images match; name a tag or digest", len(found))
	case len(found) == 0 && search:
		for _, d := range m.Manifests {
			if !d.MediaType.IsIndex() {
				continue
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := pick(child, match, true)
			if !errors.Is(err, errNoImage) {
				return img, err
			}
		}
		return nil, errNoImage
	case len(found) == 0:
		return nil, errNoImage
	}
	d := found[0]
	if d.MediaType.IsImage() {
		return idx.Image(d.Digest)
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	forHost := func(d v1.Descriptor) bool {
		return d.MediaType.IsImage() && (d.Platform == nil || onHost(*d.Platform))
	}
	img, err := pick(child, forHost, false)
	if errors.Is(err, errNoImage) {
		return nil, fmt.Errorf("index %s has no image for %s", d.Digest, hostPlatform)
	}
	return img, err
}

// onHostPlatform keeps the descriptors that declare this host's platform, or all of them when
// none does.
func onHostPlatform(ds []v1.Descriptor) []v1.Descriptor {
	var kept []v1.Descriptor
	for _, d := range ds {
		if d.Platform != nil && onHost(*d.Platform) {
			kept = append(kept, d)
		}
	}
	if len(kept) == 0 {
		return ds
	}
	return kept
}

func onHost(p v1.Platform) bool {
	return p.OS == hostPlatform.OS && p.Architecture == hostPlatform.Architecture
}
