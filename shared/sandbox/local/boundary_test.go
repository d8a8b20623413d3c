package local_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

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
		{"regain root through a setuid binary as another user", "cp /usr/bin/id /tmp/suid-id && chmod 4755 /tmp/suid-id && echo \"euid=$(setpriv --reuid=1000 --regid=1000 --clear-groups /tmp/suid-id -u)\"", "euid=0"},
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

// TestSandboxUnprivileged checks that root inside a sandbox is nobody outside: its commands run
// as SandboxUID on the host, cannot look into the agent that holds the session's secret, and
// still own the work tree, whoever wrote a file (a command or the agent).
func TestSandboxUnprivileged(t *testing.T) {
	data := t.TempDir()
	r := newRuntime(t, data, local.Auto)
	ok, why := r.UserNamespace()
	if r.Mode() != local.Namespaces || !ok {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a user namespace is required under CI: %s %s", r.Describe(), why)
		}
		t.Skip("no user namespace here: " + r.Describe())
	}
	info := started(t, r, "ses_unprivileged", archive(t))
	c := r.Client(info)
	ctx := context.Background()

	res := mustExec(t, c, "id -u; id -g; cat /proc/self/uid_map | tr -s ' '")
	if want := fmt.Sprintf("0\n0\n 0 %d 65536\n", local.SandboxUID); res.Stdout != want {
		t.Errorf("inside: %q, want %q", res.Stdout, want)
	}
	// On the host, the sandbox's commands are SandboxUID.
	mustExec(t, c, "sleep 300 >/dev/null 2>&1 & echo started")
	dir := filepath.Join(data, "sandboxes", info.Name)
	var sleeps []int
	for deadline := time.Now().Add(5 * time.Second); len(sleeps) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		sleeps = marked(dir, "sleep\x00300")
	}
	if len(sleeps) != 1 {
		t.Fatalf("found %d sleeps of the sandbox on the host", len(sleeps))
	}
	for _, pid := range sleeps {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
				for _, id := range f[1:] {
					if id != fmt.Sprint(local.SandboxUID) {
						t.Errorf("a command of the sandbox runs as %s on the host", line)
					}
				}
			}
		}
	}
	// The agent holds the session's secret: no command reads its environment, memory or
	// descriptors (the probe's marks are quoted: its own command line is in what it prints), and no process's environment or command line holds the secret.
	probe := `for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" != 1 ] && grep -q sandboxd /proc/$p/cmdline 2>/dev/null && agent=$p; done
echo "agent ${agent:-none}"
cat /proc/$agent/environ >/dev/null 2>&1 && echo "READ"-environ
head -c 1 /proc/$agent/mem >/dev/null 2>&1 && echo "READ"-mem
readlink /proc/$agent/fd/* /proc/$agent/cwd 2>/dev/null | grep -q . && echo "READ"-fd
cat /proc/$agent/maps 2>/dev/null | grep -q . && echo "READ"-maps
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n'`
	res = mustExec(t, c, probe)
	first, rest, _ := strings.Cut(res.Stdout, "\n")
	if first == "agent none" || strings.Contains(rest, "READ-") {
		t.Errorf("the agent is open to its commands: %s", res.Stdout)
	}
	if strings.Contains(res.Stdout, info.Secret) {
		t.Errorf("the session's secret is in an environment or command line: %s", res.Stdout)
	}
	// The work tree is root's inside, whether a command, the agent or the sample wrote a file.
	if _, err := c.Upload(ctx, "uploaded.txt", []byte("from the agent\n"), false); err != nil {
		t.Fatal(err)
	}
	res = mustExec(t, c, "echo by-command > made.txt && echo more >> uploaded.txt && echo more >> pkg/hello.txt && stat -c '%u:%g %n' uploaded.txt made.txt pkg/hello.txt .")
	if want := "0:0 uploaded.txt\n0:0 made.txt\n0:0 pkg/hello.txt\n0:0 .\n"; res.Stdout != want {
		t.Errorf("owners in the work tree: %q (%s), want %q", res.Stdout, res.Stderr, want)
	}
	if ok, msg, err := c.StrReplace(ctx, "made.txt", "by-command", "by-agent"); err != nil || !ok {
		t.Errorf("the agent edits a command's file: %v %s %v", ok, msg, err)
	}
}

// marked lists the processes of the sandbox in dir, by the mark in their environment, whose
// command line starts with prefix.
func marked(dir, prefix string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(env, []byte("\x00"+local.Mark(dir)+"\x00")) && bytes.HasPrefix(cmdline, []byte(prefix)) {
			out = append(out, pid)
		}
	}
	return out
}
