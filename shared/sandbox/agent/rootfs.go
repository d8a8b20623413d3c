package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// RootOptions describe a sandbox's own root file system: what the sandbox sees as "/" instead of
// the host's. Everything in it is either a read-only bind of an allow-listed host directory, a
// file written for it, or private to the sandbox (tmpfs, the work tree, the caches' upper
// layers); nothing else of the host is reachable once the agent has pivoted into it.
type RootOptions struct {
	// Dir is an empty host directory where the root is assembled (in the sandbox's own mount
	// namespace: the host never sees these mounts).
	Dir string
	// Image, when set, is the overlay mount options of the root itself: a sample's image, its
	// layers as the lower layers and the sandbox's changes in the upper one. The image then is
	// the whole root (its own /etc, toolchains and repository at Tree), writable like a
	// container's; Share, Caches and the written /etc are not used.
	Image string
	// Share are the host's system and toolchain directories bound read-only at the same path
	// (a host symlink such as /bin -> usr/bin is recreated as a symlink).
	Share []string
	// Tree is where the work tree sits inside, the same for every sandbox of a sample.
	Tree string
	// TreeFrom, when set, is a host directory bound read-write at Tree (a tree unpacked for this
	// sandbox); otherwise the InitOptions' overlay is mounted there.
	TreeFrom string
	// TreeSub is the repository's directory inside the overlay, when it is not the overlay's
	// root (an archive that holds repo/ at its top).
	TreeSub string
	// Caches maps a path inside to a host directory that becomes the read-only lower layer of a
	// private overlay there (the Go build and module caches: a cold Go build cache costs ten
	// seconds per `go test`, and a cache shared for writing would let one sandbox poison
	// another's builds).
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

// buildRoot assembles the sandbox's root in opts.Dir and pivots into it; overlay is the work
// tree's overlay mount options (when it is not a bind of TreeFrom). The agent's working directory
// is / afterwards; the host's root is detached.
func buildRoot(opts RootOptions, overlay string) error {
	root := filepath.Clean(opts.Dir)
	var err error
	if overlay, err = localOverlay(overlay); err != nil {
		return fmt.Errorf("work tree: %w", err)
	}
	if opts.TreeFrom, err = local(opts.TreeFrom); err != nil {
		return fmt.Errorf("work tree: %w", err)
	}
	if opts.Image != "" {
		if opts.Image, err = localOverlay(opts.Image); err != nil {
			return fmt.Errorf("root: the image: %w", err)
		}
		if err := unix.Mount("overlay", root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts.Image); err != nil {
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
		upper, work := filepath.Join(layers, "upper"), filepath.Join(layers, "work")
		if err := mkdirs(upper, work, filepath.Join(root, p)); err != nil {
			return err
		}
		// The layers by descriptor: the mount table shows overlays' options as given, and the
		// host path of the root being assembled is not the sandbox's business.
		if err := mountOverlay(filepath.Join(root, p), opts.Caches[p], upper, work); err != nil {
			return fmt.Errorf("cache %s: %w", p, err)
		}
	}
	tree := filepath.Join(root, opts.Tree)
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	switch {
	case opts.TreeFrom != "":
		if err := unix.Mount(opts.TreeFrom, tree, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
	case overlay != "" && opts.TreeSub == "":
		if err := unix.Mount("overlay", tree, "overlay", 0, overlay); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
	case overlay != "":
		// The overlay is the archive's root: mounted aside, its repository bound in place, and
		// the rest detached.
		aside := filepath.Join(root, ".tree")
		if err := os.Mkdir(aside, 0o700); err != nil {
			return fmt.Errorf("root: %w", err)
		}
		if err := unix.Mount("overlay", aside, "overlay", 0, overlay); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
		if err := unix.Mount(filepath.Join(aside, opts.TreeSub), tree, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
		if err := unix.Unmount(aside, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("work tree: %w", err)
		}
		if err := os.Remove(aside); err != nil {
			return fmt.Errorf("root: %w", err)
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

// local makes a directory the runtime passed as a descriptor (/proc/self/fd/N, opened in the
// host's mount namespace) usable for mounts in the sandbox's: overlayfs and bind mounts refuse a
// mount of another namespace, so the same path is opened again here, and named by the new
// descriptor so that no host path reaches the mount table. Other names are returned as they
// are. The descriptors opened stay open until the process ends or execs (they are close-on-exec).
func local(name string) (string, error) {
	if !strings.HasPrefix(name, "/proc/self/fd/") {
		return name, nil
	}
	target, err := os.Readlink(name)
	if err != nil {
		return "", err
	}
	fd, err := unix.Open(target, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), nil
}

// localOverlay is an overlay's mount options with every passed directory in them made local.
func localOverlay(opts string) (string, error) {
	parts := strings.Split(opts, ",")
	for i, part := range parts {
		key, value, ok := strings.Cut(part, "=")
		if !ok || (key != "lowerdir" && key != "upperdir" && key != "workdir") {
			continue
		}
		dirs := strings.Split(value, ":")
		for j, d := range dirs {
			l, err := local(d)
			if err != nil {
				return "", fmt.Errorf("%s: %w", key, err)
			}
			dirs[j] = l
		}
		parts[i] = key + "=" + strings.Join(dirs, ":")
	}
	return strings.Join(parts, ","), nil
}

// mountOverlay mounts an overlay of lower (a path, or /proc/self/fd/N), upper and work at
// target, naming upper and work by descriptors of their own.
func mountOverlay(target, lower, upper, work string) error {
	lower, err := local(lower)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range []string{upper, work} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		names = append(names, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	return unix.Mount("overlay", target, "overlay", 0, "lowerdir="+lower+",upperdir="+names[0]+",workdir="+names[1])
}

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

// shareDir binds the host directory d read-only at the same path under root, or recreates it
// as a symlink when the host's d is one (a merged /usr's /bin -> usr/bin). A missing d is
// skipped: the list is what a sandbox may see, not what every host has.
func shareDir(root, d string) error {
	st, err := os.Lstat(d)
	if errors.Is(err, os.ErrNotExist) {
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
	if err := unix.Mount(d, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("root: bind %s: %w", d, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("root: %s read-only: %w", d, err)
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
