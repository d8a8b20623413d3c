package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// RootOptions describe a sandbox's own root file system: what the sandbox sees as "/" instead of
// the host's. Everything in it is either a read-only mount of an allow-listed host directory, a
// file written for it, or private to the sandbox (tmpfs, the work tree, the caches' upper
// layers); nothing else of the host is reachable once the agent has pivoted into it.
//
// The runtime makes the mounts of host directories itself and passes them as descriptors
// (/proc/self/fd/N of a detached mount: open_tree(2), fsmount(2)), read-only and id-mapped where
// it should: the sandbox attaches them (move_mount(2)) without looking up a host path, which its
// root, unprivileged in a user namespace, could not, and which it should not know. A name that
// is not a passed descriptor is a host path, bound.
type RootOptions struct {
	// Dir is a directory of the sandbox's own mount namespace the root is mounted on (the host
	// never sees these mounts); whatever it held is hidden.
	Dir string
	// Image, when set, is the root itself: a sample image's overlay (its layers lower, the
	// sandbox's changes upper), as a passed mount. The image then is the whole root (its own
	// /etc, toolchains and repository at Tree), writable like a container's; Share, Caches and
	// the written /etc are not used.
	Image string
	// Share are the host's system and toolchain directories, each "path" (bound read-only at the
	// same path; a host symlink such as /bin -> usr/bin is recreated as a symlink) or
	// "path=mount" (the passed mount attached at path).
	Share []string
	// Tree is where the work tree sits inside, the same for every sandbox of a sample.
	Tree string
	// TreeFrom, when set, is the work tree, attached at Tree: a passed mount (an overlay on the
	// sample's unpacked archive, or a tree unpacked for this sandbox) or a host directory.
	TreeFrom string
	// Caches maps a path inside to a host directory (or a passed read-only mount of one) that
	// becomes the read-only lower layer of a private overlay there (the Go build and module
	// caches: a cold Go build cache costs ten seconds per `go test`, and a cache shared for
	// writing would let one sandbox poison another's builds).
	Caches map[string]string
	// Home is the sandbox's empty, writable home directory inside.
	Home string
	// TmpSize bounds the sandbox's /tmp (a tmpfs size, e.g. "1g"); empty: the tmpfs default.
	TmpSize string
}

// etcFiles are the host's /etc entries a sandbox gets: what programs need to run (the dynamic
// linker's cache, certificates, alternatives, time zones, the Python and Java configuration),
// never credentials, keys or host identity (shadow, ssh, machine-id, sudoers).
var etcFiles = []string{"alternatives", "ca-certificates", "ca-certificates.conf", "ssl", "ld.so.cache",
	"ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "mime.types", "protocols", "services",
	"bash.bashrc", "profile", "inputrc", "debian_version", "os-release", "python3", "python3.*",
	"java-*", "perl", "magic", "magic.mime", "gai.conf", "host.conf", "networks"}

// etcWritten are /etc files written for the sandbox rather than taken from the host.
var etcWritten = map[string]string{
	"passwd":        "root:x:0:0:root:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"group":         "root:x:0:\nnogroup:x:65534:\n",
	"hosts":         "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	"hostname":      "sandbox\n",
	"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
	"resolv.conf":   "",
}

// buildRoot assembles the sandbox's root at opts.Dir and pivots into it. The agent's working
// directory is / afterwards; the host's root is detached.
func buildRoot(opts RootOptions) error {
	root := filepath.Clean(opts.Dir)
	if opts.Image != "" {
		if err := attach(opts.Image, root, false); err != nil {
			return fmt.Errorf("root: the image: %w", err)
		}
	} else {
		if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=16m"); err != nil {
			return fmt.Errorf("root: %w", err)
		}
		for _, d := range opts.Share {
			if err := shareDir(root, d); err != nil {
				return err
			}
		}
		if err := buildEtc(root); err != nil {
			return err
		}
	}
	// Private, writable places: their own tmpfs, so the root itself can be read-only.
	tmpOpts := "mode=1777"
	if opts.TmpSize != "" {
		tmpOpts += ",size=" + opts.TmpSize
	}
	for _, m := range []struct{ path, opts string }{{"/tmp", tmpOpts}, {"/var/tmp", tmpOpts}, {"/run", "mode=755,size=16m"},
		{opts.Home, "mode=700,size=" + firstNonEmpty(opts.TmpSize, "1g")}} {
		if m.path == "" {
			continue // an image's own home
		}
		if err := mountTmpfs(filepath.Join(root, m.path), m.opts); err != nil {
			return err
		}
	}
	// The caches' layers live in the sandbox's /tmp: gone with it, and bounded by its size.
	paths := make([]string, 0, len(opts.Caches))
	for p := range opts.Caches {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for i, p := range paths {
		layers := filepath.Join(root, "tmp", ".cache-layers", fmt.Sprint(i))
		if err := mountOverlay(filepath.Join(root, p), opts.Caches[p], layers); err != nil {
			return fmt.Errorf("cache %s: %w", p, err)
		}
	}
	if opts.TreeFrom != "" {
		tree := filepath.Join(root, opts.Tree)
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return fmt.Errorf("root: %w", err)
		}
		if err := attach(opts.TreeFrom, tree, false); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
	}
	if err := mkdirs(filepath.Join(root, "proc"), filepath.Join(root, "dev")); err != nil {
		return err
	}
	// A /proc of the sandbox's own pid namespace.
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("root: /proc: %w", err)
	}
	if err := minimalDev(filepath.Join(root, "dev")); err != nil {
		return fmt.Errorf("root: /dev: %w", err)
	}
	return pivot(root, opts.Image == "")
}

// passedMount is the descriptor of a mount the runtime passed, named /proc/self/fd/N.
func passedMount(name string) (int, bool) {
	n, ok := strings.CutPrefix(name, "/proc/self/fd/")
	if !ok {
		return 0, false
	}
	fd, err := strconv.Atoi(n)
	return fd, err == nil && fd > 2
}

// attach puts src at target: a mount the runtime passed is moved there as it is (read-only and
// id-mapped as the runtime made it); a host directory is bound, read-only when asked.
func attach(src, target string, readOnly bool) error {
	if fd, ok := passedMount(src); ok {
		err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(fd) // a mount is passed for one place
		if err != nil {
			return fmt.Errorf("attach the runtime's mount at %s: %w", target, err)
		}
		return nil
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if !readOnly {
		return nil
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("%s read-only: %w", target, err)
	}
	return nil
}

// mountOverlay mounts at target an overlay of lower (a host directory, or a passed read-only
// mount) with its upper and work directories in layers, a new directory. The lower layer is
// attached in layers first (overlayfs takes its layers by path, in its own namespace) and
// detached again once the overlay holds it; the layers are named by descriptors, so that the
// mount table does not show where the root was assembled.
func mountOverlay(target, lower, layers string) error {
	lowerDir, upper, work := filepath.Join(layers, "lower"), filepath.Join(layers, "upper"), filepath.Join(layers, "work")
	if err := mkdirs(lowerDir, upper, work, target); err != nil {
		return err
	}
	if err := attach(lower, lowerDir, true); err != nil {
		return err
	}
	var names []string
	for _, d := range []string{lowerDir, upper, work} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		names = append(names, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	opts := "lowerdir=" + names[0] + ",upperdir=" + names[1] + ",workdir=" + names[2]
	if inUserNamespace() {
		// The trusted.* attributes overlayfs keeps its whiteouts' marks in are for the host's
		// root only.
		opts += ",userxattr"
	}
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return err
	}
	if err := unix.Unmount(lowerDir, unix.MNT_DETACH); err != nil {
		return err
	}
	return os.Remove(lowerDir)
}

// inUserNamespace reports whether this process runs in a user namespace other than the host's:
// its uid map is not the identity over every id.
var inUserNamespace = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
})

// pivot makes root the process's "/" and detaches the host's, then, with readOnly, makes the
// root itself read-only (its writable places are mounts of their own).
func pivot(root string, readOnly bool) error {
	old := filepath.Join(root, ".old-root")
	if err := os.Mkdir(old, 0o700); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old-root", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := os.Remove("/.old-root"); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if !readOnly {
		return nil
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("read-only root: %w", err)
	}
	return nil
}

// shareDir mounts the host directory d read-only at the same path under root (spec "d", bound,
// or "d=mount", a mount the runtime passed), or recreates it as a symlink when the host's d is
// one (a merged /usr's /bin -> usr/bin), or copies it when it is a file. A missing d is skipped:
// the list is what a sandbox may see, not what every host has.
func shareDir(root, spec string) error {
	d, src, _ := strings.Cut(spec, "=")
	if src == "" {
		src = d
	}
	st, err := os.Lstat(d)
	if errors.Is(err, os.ErrNotExist) && src == d {
		return nil
	}
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	target := filepath.Join(root, d)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if st.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(d)
		if err != nil {
			return fmt.Errorf("root: %w", err)
		}
		return os.Symlink(link, target)
	}
	if !st.IsDir() {
		return copyFile(d, target, st.Mode().Perm())
	}
	if err := os.Mkdir(target, 0o755); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if err := attach(src, target, true); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	return nil
}

// buildEtc writes the sandbox's /etc: the allow-listed host entries (directories bound
// read-only, files copied, symlinks recreated) and the identity files written for it.
func buildEtc(root string) error {
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	for _, pattern := range etcFiles {
		matches, _ := filepath.Glob(filepath.Join("/etc", pattern))
		for _, m := range matches {
			if err := shareDir(root, m); err != nil {
				return err
			}
		}
	}
	for name, content := range etcWritten {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	return nil
}

func mountTmpfs(dir, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("root: tmpfs on %s: %w", dir, err)
	}
	return nil
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	return nil
}

// copyFile copies a small host file (an /etc entry) into the root.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("root: copy %s: %w", src, err)
	}
	return out.Close()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
