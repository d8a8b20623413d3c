package local_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/sandbox/local"
)

// TestSandboxBoundary attacks the boundary of a sandbox from inside, as an agent that wants what
// is not its own would: every attempt must fail. (Namespaces only: a plain-process sandbox
// isolates nothing, and says so.)
func TestSandboxBoundary(t *testing.T) {
	data := t.TempDir()
	r := newRuntime(t, data, local.Auto)
	if r.Mode() != local.Namespaces {
		if os.Getenv("CI") == "true" {
			t.Fatal("namespaces are required under CI")
		}
		t.Skip("no namespaces here: " + r.Describe())
	}
	arch := archive(t)
	victim := started(t, r, "ses_victim", arch)
	attacker := started(t, r, "ses_attacker", arch)
	mustExec(t, r.Client(victim), "echo victim-secret > /workspace/repo/victim-only.txt && echo victim-tmp > /tmp/victim-tmp")

	// Files of the host's that the sandbox must not see: one beside the checkout, one in HOME.
	outside := filepath.Join(t.TempDir(), "host-secret.txt")
	os.WriteFile(outside, []byte("host-secret"), 0o644)
	home, _ := os.UserHomeDir()
	homeFile := filepath.Join(home, fmt.Sprintf(".codeset-boundary-%d", os.Getpid()))
	if err := os.WriteFile(homeFile, []byte("home-secret"), 0o600); err == nil {
		defer os.Remove(homeFile)
	}
	checkout, _ := filepath.Abs("../../..")
	// The server's port on the host's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("server-answered\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	c := r.Client(attacker)
	attacks := []struct{ name, command, leak string }{
		{"read a file outside the data dir", "cat " + outside, "host-secret"},
		{"read a file in the server's HOME", "cat " + homeFile + "; ls -a " + home, "home-secret"},
		{"list /root", "ls -a /root; ls /home", ".codeset-boundary"},
		{"read the server's checkout", "cat " + filepath.Join(checkout, "go.mod"), "module github.com/codeset/codeset"},
		{"read the host's shadow file", "cat /etc/shadow; cat /etc/gshadow; ls /etc/ssh", "root:"},
		{"read another session's work tree", "find / -name victim-only.txt -o -name victim-tmp 2>/dev/null | xargs -r cat", "victim-"},
		{"list the host's processes", "ps -eo pid,args 2>/dev/null || cat /proc/[0-9]*/cmdline", filepath.Base(os.Args[0])},
		{"see the host's processes by count", "ls -d /proc/[0-9]* | wc -l | awk '$1 > 20 {print \"many processes\"}'", "many processes"},
		{"reach the server's port on loopback", fmt.Sprintf("timeout 2 bash -c 'cat < /dev/tcp/127.0.0.1/%d'", port), "server-answered"},
		{"write outside the work tree", "touch /usr/pwned /etc/pwned /pwned /bin/pwned 2>/dev/null; ls /usr/pwned /etc/pwned /pwned /bin/pwned 2>/dev/null", "pwned"},
		{"mount the host's disk", "mount -t tmpfs x /mnt 2>/dev/null && echo mounted; mount --bind / /mnt 2>/dev/null && echo mounted", "mounted"},
		{"enter a new mount namespace", "unshare --mount true 2>/dev/null && echo escaped", "escaped"},
		{"enter a new user namespace (root in it needs no capability)", "unshare --user --map-root-user true 2>/dev/null && echo escaped", "escaped"},
		{"use the host's kernel keyring", fmt.Sprintf(`python3 -c "import ctypes; l = ctypes.CDLL(None); print('key', l.syscall(%d, b'user', b'x', b'y', 1, -4))" 2>/dev/null | grep -v 'key -1'`, addKeySyscall()), "key"},
		{"undo the read-only root", "mount -o remount,rw / 2>/dev/null && echo remounted", "remounted"},
		{"reach the host's devices", "ls /dev/sda /dev/vda /dev/nvme0n1 /dev/mem /dev/kmsg 2>/dev/null", "/dev/"},
	}
	for _, a := range attacks {
		res := mustExec(t, c, a.command+"; true")
		// Stdout only: the errors name the paths tried.
		if strings.Contains(res.Stdout, a.leak) {
			t.Errorf("%s: the sandbox got %q (stderr %q)", a.name, res.Stdout, res.Stderr)
		}
	}
	// Nothing the attacker wrote reached the host.
	for _, p := range []string{"/usr/pwned", "/etc/pwned", "/pwned", "/bin/pwned"} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s was written on the host", p)
		}
	}
	// No host path in what the sandbox can read of itself: its working directory, environment,
	// mount table and every command line in it.
	res := mustExec(t, c, "pwd; env; cat /proc/self/mountinfo; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
	if !strings.Contains(res.Stdout, " /workspace/repo ") || !strings.Contains(res.Stdout, "sandboxd") {
		t.Fatalf("the sandbox's mount table or command lines are missing: %s", res.Stdout)
	}
	for _, host := range []string{data, checkout, home + "/", "/root/", binary} {
		if strings.Contains(res.Stdout, host) {
			t.Errorf("a host path (%s) in the sandbox's pwd, environment, mounts or command lines: %s", host, res.Stdout)
		}
	}
	if !strings.HasPrefix(res.Stdout, "/workspace/repo\n") {
		t.Errorf("the work tree is not at its fixed path: %s", res.Stdout)
	}
}

// addKeySyscall is add_key's number on this architecture.
func addKeySyscall() int {
	if runtime.GOARCH == "arm64" {
		return 217
	}
	return 248
}
