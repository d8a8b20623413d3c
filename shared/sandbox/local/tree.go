package local

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/image"
)

// TreeRoot is where a sample's repository sits inside a local sandbox whose work_dir is relative
// (the demo's "repo" is /workspace/repo); an absolute work_dir is used as it is, as in the
// sample's image on Cloud Run.
const TreeRoot = sandbox.TreeRoot

// Home is a sandbox's home directory inside: empty and private.
const Home = "/home/user"

// DefaultShare are the host directories a sandbox sees, read-only, at the same paths: the system
// and its toolchains (Go under /usr/local, Python and Java under /usr). Not /root, /home, /etc
// (a minimal one is written for it), the server's checkout or data dir, nor anything else.
var DefaultShare = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// treeSetup is how one sandbox's work tree is laid out.
type treeSetup struct {
	WorkDir string   // the repository as the sandbox's processes see it
	Host    string   // the repository on the host when it is a directory of its own there (no overlay)
	Flags   []string // sandboxd's flags that mount the tree, and the root around it in namespaces
	Env     []string // the environment of the sandbox's processes (nil: the runtime's, sandboxEnv)
}

// InsideWorkDir is where env's repository sits inside a sandbox with a root of its own: the
// same place as on Cloud Run (sandbox.InsideWorkDir).
func InsideWorkDir(env sandbox.Environment) string { return sandbox.InsideWorkDir(env) }

// prepareTree lays out the work tree of the sandbox in dir (a session's or an oracle's): in
// namespaces, a root of its own with the tree at its fixed path, an overlay on the archive
// unpacked once (or a fresh unpack where overlays do not work); as plain processes, a fresh
// unpack in dir.
func (r *Runtime) prepareTree(ctx context.Context, dir string, env sandbox.Environment, p *passed) (treeSetup, error) {
	var t treeSetup
	if env.Image != "" {
		return r.prepareImage(ctx, dir, env, p)
	}
	if r.mode != Namespaces {
		root := filepath.Join(dir, treeName(env))
		if err := os.MkdirAll(root, 0o755); err != nil {
			return t, err
		}
		t.WorkDir, t.Host = root, root
		if env.Archive != "" {
			if err := unpack(r.archivePath(env), root); err != nil {
				return t, err
			}
			t.WorkDir, t.Host = workTree(root), workTree(root)
		}
		return t, nil
	}
	t.WorkDir = InsideWorkDir(env)
	if r.baseImage != "" && !r.overlay {
		return t, fmt.Errorf("local sandboxes: a base image needs overlay mounts: %s", r.Describe())
	}
	ns := r.idmap()
	if r.baseImage != "" {
		// The operator's base image is the root, the archive's tree goes in it at its place.
		img, err := r.pull(ctx, r.baseImage)
		if err != nil {
			return t, fmt.Errorf("the sandboxes' base image: %w", err)
		}
		rootFlags, err := r.imageRoot(dir, img, "root-upper", "root-work", p)
		if err != nil {
			return t, err
		}
		t.Flags = append(rootFlags, "--tree", t.WorkDir, "--home", "")
		t.Env = imageEnv(img.Env)
	} else {
		shares, err := r.shares(p)
		if err != nil {
			return t, err
		}
		t.Flags = []string{"--loopback", "--root", rootMount, "--share", shares, "--tree", t.WorkDir, "--home", Home}
		for inside, host := range r.caches {
			name, err := p.mount(host, readOnly, ns)
			if err != nil {
				return t, fmt.Errorf("cache %s: %w", host, err)
			}
			t.Flags = append(t.Flags, "--cache", inside+"="+name)
		}
	}
	switch {
	case env.Archive != "" && r.overlay:
		// The archive is unpacked once into a shared, read-only lower layer; the sandbox gets an
		// empty upper layer for its changes. Start costs no file copies.
		lower, err := r.unpacked(r.archivePath(env))
		if err != nil {
			return t, err
		}
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "overlay-work")
		for _, d := range []string{upper, work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return t, err
			}
		}
		sub, err := filepath.Rel(lower, workTree(lower))
		if err != nil {
			return t, err
		}
		name, err := p.overlay([]string{lower}, upper, work, sub, ns)
		if err != nil {
			return t, fmt.Errorf("work tree: %w", err)
		}
		t.Flags = append(t.Flags, "--tree-from", name)
	default:
		root := filepath.Join(dir, treeName(env))
		if err := os.MkdirAll(root, 0o755); err != nil {
			return t, err
		}
		t.Host = root
		if env.Archive != "" {
			if err := unpack(r.archivePath(env), root); err != nil {
				return t, err
			}
			t.Host = workTree(root)
		}
		from, err := p.mount(t.Host, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, ns)
		if err != nil {
			return t, err
		}
		t.Flags = append(t.Flags, "--tree-from", from)
	}
	return t, nil
}

// rootMount is the directory of a sandbox's own mount namespace that its root is mounted on
// before it pivots: every host has it, and what it holds is hidden there only.
const rootMount = "/tmp"

// readOnly are the mount attributes of what a sandbox may read and not change.
const readOnly = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV

// shares is sandboxd's --share: each shared host directory as a read-only mount passed to the
// sandbox, and each shared symlink (/bin -> usr/bin) or file by its path, which the sandbox
// recreates.
func (r *Runtime) shares(p *passed) (string, error) {
	var out []string
	for _, d := range r.share {
		st, err := os.Lstat(d)
		switch {
		case os.IsNotExist(err):
			continue
		case err != nil:
			return "", err
		case !st.IsDir():
			out = append(out, d)
			continue
		}
		name, err := p.mount(d, readOnly, r.idmap())
		if err != nil {
			return "", err
		}
		out = append(out, d+"="+name)
	}
	return strings.Join(out, ","), nil
}

// hostCaches are the server's own Go build and module caches, when it has them: read-only lower
// layers of a sandbox's private caches, so that `go test` there is not a cold build.
func hostCaches() map[string]string {
	home, _ := os.UserHomeDir()
	gopath := os.Getenv("GOPATH")
	if gopath == "" && home != "" {
		gopath = filepath.Join(home, "go")
	}
	candidates := map[string][]string{
		"/var/cache/go-build": {os.Getenv("GOCACHE"), filepath.Join(home, ".cache", "go-build")},
		"/var/cache/go-mod":   {os.Getenv("GOMODCACHE"), filepath.Join(gopath, "pkg", "mod")},
	}
	out := map[string]string{}
	for inside, dirs := range candidates {
		for _, d := range dirs {
			if d == "" || !filepath.IsAbs(d) || strings.ContainsAny(d, ",:=") {
				continue
			}
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				out[inside] = d
				break
			}
		}
	}
	return out
}

// insideEnv is the environment of a sandbox with a root of its own: the host's PATH without the
// directories it does not have, its own home and caches, none of the host's paths.
func (r *Runtime) insideEnv() []string {
	env := []string{"CODESET_SANDBOX=1", "HOME=" + Home, "USER=root", "LOGNAME=root", "GOPATH=" + Home + "/go"}
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if r.shared(d) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		dirs = []string{"/usr/local/bin", "/usr/bin", "/bin"}
	}
	env = append(env, "PATH="+strings.Join(dirs, ":"))
	for inside := range r.caches {
		switch inside {
		case "/var/cache/go-build":
			env = append(env, "GOCACHE="+inside)
		case "/var/cache/go-mod":
			env = append(env, "GOMODCACHE="+inside)
		}
	}
	for _, k := range []string{"LANG", "LC_ALL", "LC_CTYPE", "TZ", "GOFLAGS", "GOTOOLCHAIN"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range []string{"GOROOT", "JAVA_HOME"} {
		if v := os.Getenv(k); v != "" && r.shared(v) {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// shared reports whether the host path p is inside a directory the sandboxes see.
func (r *Runtime) shared(p string) bool {
	p = filepath.Clean(p)
	for _, d := range r.share {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// prepareImage lays out a sandbox whose root is the sample's image: an overlay whose lower
// layers are the image's (pulled and unpacked once per layer, shared read-only), whose upper
// layer is the sandbox's own; the repository is at the sample's work_dir inside it.
func (r *Runtime) prepareImage(ctx context.Context, dir string, env sandbox.Environment, p *passed) (treeSetup, error) {
	var t treeSetup
	if r.mode != Namespaces || !r.overlay {
		return t, fmt.Errorf("local sandboxes: the sample's environment is an image, which needs namespaces and overlay mounts: %s", r.Describe())
	}
	img, err := r.pull(ctx, env.Image)
	if err != nil {
		return t, fmt.Errorf("the sample's image: %w", err)
	}
	// The sandbox's changes (the work tree's among them) in "upper", where the oracle reads them.
	if t.Flags, err = r.imageRoot(dir, img, "upper", "overlay-work", p); err != nil {
		return t, err
	}
	t.WorkDir = InsideWorkDir(env)
	t.Flags = append(t.Flags, "--tree", t.WorkDir, "--home", "")
	t.Env = imageEnv(img.Env)
	return t, nil
}

// pull gets an image, unpacked, from the runtime's store.
func (r *Runtime) pull(ctx context.Context, ref string) (*image.Image, error) {
	store, err := r.imageStore()
	if err != nil {
		return nil, err
	}
	return store.Get(ctx, ref)
}

// imageRoot is sandboxd's flags that make img the sandbox's root: an overlay of its layers under
// dir's upper and work directories, passed as a mount.
func (r *Runtime) imageRoot(dir string, img *image.Image, upper, work string, p *passed) ([]string, error) {
	upper, work = filepath.Join(dir, upper), filepath.Join(dir, work)
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	lowers := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		lowers[len(lowers)-1-i] = l // overlayfs lists the uppermost first
	}
	name, err := p.overlay(lowers, upper, work, "", r.idmap())
	if err != nil {
		return nil, fmt.Errorf("the image's root: %w", err)
	}
	return []string{"--loopback", "--root", rootMount, "--root-image", name}, nil
}

// imageEnv is the environment of a sandbox running an image: the image's own, with a PATH and a
// HOME if it has none, and the sandbox's mark.
func imageEnv(config []string) []string {
	env := []string{"CODESET_SANDBOX=1"}
	has := map[string]bool{}
	for _, kv := range config {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CODESET_SANDBOX" {
			continue
		}
		has[k] = true
		env = append(env, kv)
	}
	if !has["PATH"] {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !has["HOME"] {
		env = append(env, "HOME=/root")
	}
	return env
}

// treeSub is where a sandbox's repository is inside its overlay's upper layer.
func treeSub(env sandbox.Environment, pristine string) string {
	if env.Image != "" {
		return strings.TrimPrefix(path.Clean(InsideWorkDir(env)), "/")
	}
	sub, err := filepath.Rel(pristine, workTree(pristine))
	if err != nil {
		return "."
	}
	return sub
}
