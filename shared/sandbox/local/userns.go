package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SandboxUID is the host uid and gid that root inside a namespaced sandbox is: the sandbox runs
// in a user namespace of its own that maps its ids 0 to 65535 to the host's SandboxUID to
// SandboxUID+65535, ids that own nothing on the host and have no capability there. Every
// sandbox has the same map (as Docker's userns-remap does): they are kept apart by their mount,
// pid and network namespaces.
const SandboxUID = 100000

// sandboxIDs is how many ids the map covers.
const sandboxIDs = 65536

var sandboxIDMap = []syscall.SysProcIDMap{{ContainerID: 0, HostID: SandboxUID, Size: sandboxIDs}}

// inUserNamespace makes cmd start in a new user namespace with the sandboxes' map, as root
// there. The namespaces it then creates (unshare's mount, pid and network namespaces) belong to
// that user namespace, so the sandbox's root can mount, pivot and bring up lo in them, and
// nothing outside.
func inUserNamespace(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
	cmd.SysProcAttr.UidMappings = sandboxIDMap
	cmd.SysProcAttr.GidMappings = sandboxIDMap
	cmd.SysProcAttr.GidMappingsEnableSetgroups = true
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	// The host directory the runtime starts it in is not the sandbox's to enter.
	cmd.Dir = "/"
}

// idmapNamespace is a user namespace with the sandboxes' map, held open by this process for its
// whole life: the mounts the runtime makes for sandboxes are id-mapped through it (a file the
// host's root owns is owned by the sandbox's root inside, and what the sandbox writes is the
// host root's on disk). It is the namespace of a process started only to make it.
var idmapNamespace = sync.OnceValues(func() (int, error) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return -1, err
	}
	cmd := exec.Command(bash, "-c", "read -r _")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return -1, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: sandboxIDMap, GidMappings: sandboxIDMap}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("a user namespace: %w", err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("a user namespace: %w", err)
	}
	return fd, nil
})

// usernsStarts runs unshare with the sandboxes' namespaces in a user namespace, once per process.
var usernsStarts = sync.OnceValue(func() error {
	unshare, err := namespacesWork()
	if err != nil {
		return err
	}
	cmd := exec.Command(unshare, append(unshareArgs, "--", "true")...)
	inUserNamespace(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unshare in a user namespace fails here: %v: %s", err, out)
	}
	return nil
})

// usernsWorks checks that sandboxes can run in a user namespace here, with id-mapped mounts of
// the file system that holds dir (the data dir), and says why not.
func usernsWorks(dir string) error {
	if os.Geteuid() != 0 {
		return errors.New("the server does not run as root, which id-mapped mounts need")
	}
	ns, err := idmapNamespace()
	if err != nil {
		return err
	}
	if err := usernsStarts(); err != nil {
		return err
	}
	fd, err := detachedMount(dir, unix.MOUNT_ATTR_RDONLY, ns)
	if err != nil {
		return fmt.Errorf("id-mapped mounts of %s fail here: %w", filepath.Clean(dir), err)
	}
	unix.Close(fd)
	return nil
}

// detachedMount makes a mount of hostPath that is attached nowhere (open_tree(2)), with the
// mount attributes attr, id-mapped through the user namespace userns unless it is -1.
func detachedMount(hostPath string, attr uint64, userns int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, hostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", hostPath, err)
	}
	if err := setMountAttr(fd, attr, userns); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", hostPath, err)
	}
	return fd, nil
}

// setMountAttr sets attr on the detached mount fd, and its id map when userns is not -1.
func setMountAttr(fd int, attr uint64, userns int) error {
	a := unix.MountAttr{Attr_set: attr}
	if userns >= 0 {
		a.Attr_set |= unix.MOUNT_ATTR_IDMAP
		a.Userns_fd = uint64(userns)
	}
	if a.Attr_set == 0 {
		return nil
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &a); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// overlayMount makes an overlay that is attached nowhere (fsmount(2)): lowers (the uppermost
// first), each a read-only mount of its own, id-mapped through userns unless it is -1, under
// the host directories upper and work. The runtime mounts it, as the host's root: overlayfs
// then keeps its marks in trusted.* attributes, as the oracle and the image store expect, and a
// sandbox's root needs no right on the host's directories. With userns, upper's owner becomes
// the sandbox's root (the merged root directory is upper's), and what the sandbox writes there
// is owned by its ids on disk; the lower layers stay as they are.
func overlayMount(lowers []string, upper, work string, userns int) (int, error) {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	lowerdir := ""
	for i, l := range lowers {
		fd, err := detachedMount(l, unix.MOUNT_ATTR_RDONLY, userns)
		if err != nil {
			return -1, err
		}
		fds = append(fds, fd)
		if i > 0 {
			lowerdir += ":"
		}
		lowerdir += fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	if userns >= 0 && len(lowers) > 0 {
		var st unix.Stat_t
		if err := unix.Stat(lowers[0], &st); err != nil {
			return -1, err
		}
		if err := os.Chown(upper, SandboxUID+int(st.Uid), SandboxUID+int(st.Gid)); err != nil {
			return -1, err
		}
	}
	// The upper and work directories by descriptor too: the sandbox's mount table shows an
	// overlay's options as given, and the host's paths are not its business.
	var names []string
	for _, d := range []string{upper, work} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("overlay: %w", err)
		}
		fds = append(fds, fd)
		names = append(names, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("overlay: %w", err)
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{{"lowerdir", lowerdir}, {"upperdir", names[0]}, {"workdir", names[1]}} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return -1, fmt.Errorf("overlay: %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("overlay: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("overlay: %w", err)
	}
	return fd, nil
}
