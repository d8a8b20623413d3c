package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/codeset/codeset/shared/config"
)

// Limits bound what one sandbox (a session's, or an oracle's) may use of the machine; a zero
// field is no limit. Every process of the sandbox counts: its init and agent, its commands and
// whatever they leave running.
type Limits struct {
	// Memory is the RAM of all its processes, its tmpfs files (/tmp, home) included, in bytes,
	// with no swap. Past it the kernel reclaims caches, then kills one of its processes.
	Memory int64
	// CPUWeight is its share of the CPU against the other sandboxes when the machine is busy:
	// cgroup v2's cpu.weight (1 to 10000; 100 is the kernel's default, so equal weights are equal
	// shares); on cgroup v1, cpu.shares = weight * 1024 / 100.
	CPUWeight int64
	// CPUs caps its CPU time at this many cores' worth, however idle the machine is.
	CPUs float64
	// Pids caps the processes and threads of its commands together: a fork past it fails. (Its
	// init and agent have agentReserve more of their own.)
	Pids int64
	// OpenFiles is the RLIMIT_NOFILE, soft and hard, of its commands (which cannot raise it).
	OpenFiles int64
	// Tmp is the size of its private /tmp, /var/tmp and home, each (namespaces only). They are
	// memory, and count in Memory too.
	Tmp int64
	// Disk is how much its work tree's changes may take on disk, in bytes: its overlay's upper
	// layer (namespaces with overlays only; there is no quota on the host's file system). The
	// agent measures it while a command runs and kills a command that grows it past the limit.
	Disk int64
}

// controlled reports whether the limits need a control group.
func (l Limits) controlled() bool {
	return l.Memory > 0 || l.CPUWeight > 0 || l.CPUs > 0 || l.Pids > 0
}

// cgroupMount is where the kernel's control groups are mounted.
const cgroupMount = "/sys/fs/cgroup"

// groupRecord is the file in a sandbox's directory that names its control group, so that a later
// server (whose own group may differ) still finds it to stop it.
const groupRecord = "cgroup.json"

// controlGroups puts each sandbox in a control group of its own, created before the sandbox's
// first process starts, in a "codeset" group under this process's own group of each controller
// (a limit on the server covers its sandboxes too). A sandbox's group is named
// "<data dir hash>-sandbox-<session id>" or "<data dir hash>-oracle-<oracle dir>": each server
// knows its own, and a test's sandboxes never meet another test's.
type controlGroups struct {
	v2     bool
	limits Limits
	prefix string // this data dir's groups

	hierarchy cgroup1.Hierarchy                         // v1: the controllers a sandbox's group is made of
	mount1    map[cgroup1.Name]func(path string) string // v1: where a group's directory is in each
	parent1   map[cgroup1.Name]string                   // v1: the "codeset" group's path in each of them
	swap1     bool                                      // v1: memory.memsw exists (swap accounting is on)
	parent2   string                                    // v2: the "codeset" group
	swap2     bool                                      // v2: memory.swap.max exists
}

// group is one sandbox's control group, as recorded in its directory.
type group struct {
	Name string            `json:"name"`
	V1   map[string]string `json:"v1,omitempty"` // controller -> path below its mount
	V2   string            `json:"v2,omitempty"` // path below the unified mount
}

// v1Controllers are the controllers of a sandbox's group on cgroup v1: what the limits need. (The
// kernel takes milliseconds to make a group in each, and a sandbox starts in tens.)
var v1Controllers = []cgroup1.Name{cgroup1.Memory, cgroup1.Cpu, cgroup1.Pids}

// A sandbox's group holds its commands in a group of their own, "commands", which has the process
// limit; the group itself has agentReserve more, for its init and agent, which must keep running
// (a Go program that cannot start a thread dies) while a fork bomb fills the commands' group. The
// agent moves each command there before the command runs anything. On cgroup v2, where a group
// with groups below it holds no process, the init and agent are in a group of their own, "agent".
const (
	commandsGroup = "commands"
	agentGroup    = "agent"
	agentReserve  = 256
)

// newCgroups prepares the "codeset" group of this process for the data dir's sandboxes, once it
// has checked, once per process, that this machine lets it place a process in a group of its own.
func newCgroups(dataDir string, l Limits) (*controlGroups, error) {
	if err := cgroupsWork(); err != nil {
		return nil, err
	}
	c, err := openCgroups(l)
	if err != nil {
		return nil, err
	}
	c.prefix = hexHash(dataDir) + "-"
	return c, nil
}

// openCgroups prepares the "codeset" group in the hierarchy this machine has: cgroup v2 when it
// is the only one, else v1 (a hybrid machine's v2 hierarchy has no controllers).
func openCgroups(l Limits) (*controlGroups, error) {
	c := &controlGroups{limits: l}
	var err error
	switch cgroups.Mode() {
	case cgroups.Unified:
		c.v2 = true
		err = c.prepare2()
	case cgroups.Legacy, cgroups.Hybrid:
		err = c.prepare1()
	default:
		err = errors.New("no control groups are mounted at " + cgroupMount)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *controlGroups) prepare1() error {
	c.hierarchy = func() ([]cgroup1.Subsystem, error) {
		all, err := cgroup1.Default()
		if err != nil {
			return nil, err
		}
		var out []cgroup1.Subsystem
		for _, s := range all {
			for _, n := range v1Controllers {
				if s.Name() == n {
					out = append(out, s)
				}
			}
		}
		return out, nil
	}
	subs, err := c.hierarchy()
	if err != nil {
		return fmt.Errorf("cgroup v1: %w", err)
	}
	parent := cgroup1.NestedPath("codeset")
	c.parent1, c.mount1 = map[cgroup1.Name]string{}, map[cgroup1.Name]func(string) string{}
	for _, s := range subs {
		dir, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		p, err := parent(s.Name())
		if errors.Is(err, cgroup1.ErrControllerNotActive) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cgroup v1: %w", err)
		}
		c.parent1[s.Name()], c.mount1[s.Name()] = p, dir.Path
	}
	for _, need := range []cgroup1.Name{cgroup1.Memory, cgroup1.Cpu, cgroup1.Pids} {
		if _, ok := c.parent1[need]; !ok {
			return fmt.Errorf("cgroup v1: the %s controller is not mounted", need)
		}
	}
	if _, err := cgroup1.New(parent, &specs.LinuxResources{}, cgroup1.WithHierarchy(c.hierarchy)); err != nil {
		return fmt.Errorf("cgroup v1: create the codeset group: %w", err)
	}
	_, err = os.Stat(c.dir1(cgroup1.Memory, c.parent1[cgroup1.Memory], "memory.memsw.limit_in_bytes"))
	c.swap1 = err == nil
	return nil
}

// prepare2 makes the "codeset" group below this process's own, which must hand the memory,
// cpu and pids controllers down to it. The kernel lets a group hand controllers down only when
// no process sits in it (the root aside): when this server sits in its group alone (a systemd
// service with Delegate=yes), it moves to a leaf of its own, "server", below it.
func (c *controlGroups) prepare2() error {
	own, err := cgroup2.NestedGroupPath("")
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	c.parent2 = path.Join(own, "codeset")
	res := &cgroup2.Resources{CPU: &cgroup2.CPU{}, Memory: &cgroup2.Memory{}, Pids: &cgroup2.Pids{}}
	_, err = cgroup2.NewManager(cgroupMount, c.parent2, res)
	if errors.Is(err, unix.EBUSY) {
		leaf, lerr := cgroup2.NewManager(cgroupMount, path.Join(own, "server"), &cgroup2.Resources{})
		if lerr == nil {
			lerr = leaf.AddProc(uint64(os.Getpid()))
		}
		if lerr != nil {
			return fmt.Errorf("cgroup v2: %s holds this server, which cannot move below it: %w", own, lerr)
		}
		_, err = cgroup2.NewManager(cgroupMount, c.parent2, res)
	}
	if err != nil {
		return fmt.Errorf("cgroup v2: %s cannot hand the memory, cpu and pids controllers down (run the server in a group of its own, e.g. systemd-run -p Delegate=yes): %w", own, err)
	}
	_, err = os.Stat(filepath.Join(cgroupMount, c.parent2, "memory.swap.max"))
	c.swap2 = err == nil
	return nil
}

// cgroupsWork starts, once per process, a process in a control group of its own and checks
// that it was there.
var cgroupsWork = sync.OnceValue(func() error {
	c, err := openCgroups(Limits{})
	if err != nil {
		return err
	}
	c.prefix = "probe-"
	g, err := c.create(strconv.Itoa(os.Getpid()), "start")
	if err != nil {
		return err
	}
	defer c.remove(g)
	var out strings.Builder
	cmd := exec.Command("cat", "/proc/self/cgroup")
	cmd.Stdout = &out
	if err := c.start(g, cmd); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("a process in a control group of its own: %w", err)
	}
	if !strings.Contains(out.String(), "/"+g.Name+"\n") && !strings.Contains(out.String(), "/"+g.Name+"/"+agentGroup+"\n") {
		return fmt.Errorf("a process started in control group %s is elsewhere: %s", g.Name, out.String())
	}
	return nil
})

// name is the group of a sandbox ("sandbox") or of an oracle ("oracle"), by its directory's name.
func (c *controlGroups) name(kind, dirName string) string { return c.prefix + kind + "-" + dirName }

// dir1 is a file (or the directory, with no file) of a v1 group in one controller.
func (c *controlGroups) dir1(n cgroup1.Name, p string, file ...string) string {
	dir := filepath.Join(cgroupMount, string(n), p)
	if at, ok := c.mount1[n]; ok {
		dir = at(p)
	}
	return filepath.Join(append([]string{dir}, file...)...)
}

// create makes the group of one sandbox with the limits; kind is "sandbox" or "oracle" and
// dirName the name of its directory.
func (c *controlGroups) create(kind, dirName string) (*group, error) {
	g := &group{Name: c.name(kind, dirName)}
	if c.v2 {
		g.V2 = path.Join(c.parent2, g.Name)
		_, err := cgroup2.NewManager(cgroupMount, g.V2, c.resources2())
		if err == nil {
			_, err = cgroup2.NewManager(cgroupMount, path.Join(g.V2, agentGroup), &cgroup2.Resources{})
		}
		if err == nil && c.limits.Pids > 0 {
			_, err = cgroup2.NewManager(cgroupMount, path.Join(g.V2, commandsGroup), &cgroup2.Resources{Pids: &cgroup2.Pids{Max: c.limits.Pids}})
		}
		if err != nil {
			c.remove(g)
			return nil, fmt.Errorf("create control group %s: %w", g.V2, err)
		}
		return g, nil
	}
	g.V1 = map[string]string{}
	for n, p := range c.parent1 {
		g.V1[string(n)] = path.Join(p, g.Name)
	}
	_, err := cgroup1.New(g.path1(), c.resources1(), cgroup1.WithHierarchy(c.hierarchy))
	if err == nil && c.limits.Pids > 0 {
		// In the pids controller only: the others' limits are the sandbox's as a whole.
		n := c.limits.Pids
		commands := func(cgroup1.Name) (string, error) { return path.Join(g.V1[string(cgroup1.Pids)], commandsGroup), nil }
		_, err = cgroup1.New(commands, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &n}}, cgroup1.WithHierarchy(cgroup1.SingleSubsystem(c.hierarchy, cgroup1.Pids)))
	}
	if err != nil {
		c.remove(g)
		return nil, fmt.Errorf("create control group %s: %w", g.Name, err)
	}
	return g, nil
}

// path1 is the group's path in each v1 controller.
func (g *group) path1() cgroup1.Path {
	return func(n cgroup1.Name) (string, error) {
		if p, ok := g.V1[string(n)]; ok {
			return p, nil
		}
		return "", cgroup1.ErrControllerNotActive
	}
}

func (c *controlGroups) resources1() *specs.LinuxResources {
	l := c.limits
	var r specs.LinuxResources
	if l.Memory > 0 {
		m := l.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
		if c.swap1 {
			r.Memory.Swap = &m // memory and swap together: no swap
		}
	}
	if l.CPUWeight > 0 || l.CPUs > 0 {
		r.CPU = &specs.LinuxCPU{}
		if l.CPUWeight > 0 {
			shares := uint64(max(2, l.CPUWeight*1024/100))
			r.CPU.Shares = &shares
		}
		if l.CPUs > 0 {
			period, quota := uint64(100_000), int64(l.CPUs*100_000)
			r.CPU.Period, r.CPU.Quota = &period, &quota
		}
	}
	if l.Pids > 0 {
		n := l.Pids + agentReserve
		r.Pids = &specs.LinuxPids{Limit: &n}
	}
	return &r
}

func (c *controlGroups) resources2() *cgroup2.Resources {
	l := c.limits
	r := &cgroup2.Resources{CPU: &cgroup2.CPU{}, Memory: &cgroup2.Memory{}, Pids: &cgroup2.Pids{}}
	if l.Memory > 0 {
		m := l.Memory
		r.Memory.Max = &m
		if c.swap2 {
			var none int64
			r.Memory.Swap = &none
		}
	}
	if l.CPUWeight > 0 {
		w := uint64(min(max(l.CPUWeight, 1), 10000))
		r.CPU.Weight = &w
	}
	if l.CPUs > 0 {
		period, quota := uint64(100_000), int64(l.CPUs*100_000)
		r.CPU.Max = cgroup2.NewCPUMax(&quota, &period)
	}
	if l.Pids > 0 {
		r.Pids.Max = l.Pids + agentReserve
	}
	return r
}

// start starts cmd inside g: the process is in the group from its first instruction, so is
// everything it ever forks, and nothing of the sandbox runs outside it for a moment.
//   - cgroup v2: the kernel clones the process straight into the group (CLONE_INTO_CGROUP).
//   - cgroup v1 has no such thing, but its groups hold threads, and a child starts in the
//     groups of the thread that forks it: one OS thread of this server moves into g, forks the
//     sandbox's first process and moves back. A thread that cannot move back is never reused:
//     it ends with its goroutine, locked.
func (c *controlGroups) start(g *group, cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if c.v2 {
		fd, err := unix.Open(filepath.Join(cgroupMount, g.V2, agentGroup), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open control group %s: %w", g.V2, err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		return cmd.Start()
	}
	cg, err := cgroup1.Load(g.path1(), cgroup1.WithHierarchy(c.hierarchy))
	if err != nil {
		return fmt.Errorf("control group %s: %w", g.Name, err)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		home, err := cgroup1.Load(cgroup1.PidPath(tid), cgroup1.WithHierarchy(c.hierarchy))
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("control groups of this thread: %w", err)
			return
		}
		back := func() error { return home.AddTask(cgroup1.Process{Pid: tid}) }
		if err := cg.AddTask(cgroup1.Process{Pid: tid}); err != nil {
			if back() == nil {
				runtime.UnlockOSThread()
			}
			done <- fmt.Errorf("enter control group %s: %w", g.Name, err)
			return
		}
		err = cmd.Start()
		if berr := back(); berr != nil {
			if err == nil {
				// Its parent thread ends with this goroutine: with a parent-death signal
				// the process would die with it, and without one it must not run unseen.
				cmd.Process.Kill()
				cmd.Wait()
			}
			done <- fmt.Errorf("leave control group %s: %w", g.Name, berr)
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// remove kills every process left in g and deletes it. A group already gone is not an error; one
// whose processes outlive SIGKILL is.
func (c *controlGroups) remove(g *group) error {
	deadline := time.Now().Add(10 * time.Second)
	if c.v2 {
		m, err := cgroup2.Load(g.V2)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(cgroupMount, g.V2)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		for {
			procs, err := m.Procs(true)
			if err != nil || len(procs) == 0 {
				break
			}
			m.Kill()
			if time.Now().After(deadline) {
				return fmt.Errorf("control group %s: processes still running 10 s after SIGKILL", g.V2)
			}
			time.Sleep(2 * time.Millisecond)
		}
		retry(deadline, m.Delete)
		return nil
	}
	cg, err := cgroup1.Load(g.path1(), cgroup1.WithHierarchy(c.hierarchy))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		// Round after round: what a process forks before it is killed is killed in the next.
		procs, _ := cg.Processes(cg.Subsystems()[0].Name(), true)
		for _, p := range procs {
			syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		if len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("control group %s: processes still running 10 s after SIGKILL", g.Name)
		}
		time.Sleep(2 * time.Millisecond)
	}
	retry(deadline, cg.Delete)
	return nil
}

// retry calls f until it succeeds or the deadline passes. It deletes a group whose processes were
// all killed: a killed process leaves its group only once reaped. One that cannot be deleted
// holds no process, limits nothing, and is left to the next sweep.
func retry(deadline time.Time, f func() error) error {
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// record writes g into the sandbox's directory.
func record(dir string, g *group) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, groupRecord), b, 0o600)
}

// recorded is the group of the sandbox named name, as recorded in dir, or where this server
// would make it when there is no record. A record is believed only where it names the group
// this data dir's sandbox of that name has: a plain-process sandbox can write its directory.
func (c *controlGroups) recorded(dir, kind, name string) *group {
	want := c.name(kind, name)
	var g group
	if b, err := os.ReadFile(filepath.Join(dir, groupRecord)); err == nil && json.Unmarshal(b, &g) == nil && g.Name == want {
		ok := g.V1 != nil || g.V2 != ""
		for _, p := range g.V1 {
			ok = ok && path.Base(path.Dir(p)) == "codeset" && path.Base(p) == want && path.Clean(p) == p
		}
		if g.V2 != "" {
			ok = ok && g.V1 == nil && path.Base(path.Dir(g.V2)) == "codeset" && path.Base(g.V2) == want && path.Clean(g.V2) == g.V2
		}
		if ok {
			return &g
		}
	}
	return c.at(want)
}

// at is the group of that name in this server's codeset group.
func (c *controlGroups) at(name string) *group {
	g := &group{Name: name}
	if c.v2 {
		g.V2 = path.Join(c.parent2, name)
		return g
	}
	g.V1 = map[string]string{}
	for n, p := range c.parent1 {
		g.V1[string(n)] = path.Join(p, name)
	}
	return g
}

// sweep removes the groups this server's sandboxes left behind: those of this data dir whose
// sandbox or oracle directory is gone (their processes killed), and any other group of the
// codeset group that has been empty for a minute (a test's, or a sandbox that ended by
// itself). A group gets its first process as soon as it is made, so an old empty one never
// will.
func (c *controlGroups) sweep(dataDir string) {
	for _, name := range c.children() {
		rest, ours := strings.CutPrefix(name, c.prefix)
		kind, dirName, _ := strings.Cut(rest, "-")
		g := c.at(name)
		if ours && (kind == "sandbox" || kind == "oracle") {
			parent := map[string]string{"sandbox": "sandboxes", "oracle": "oracles"}[kind]
			if _, err := os.Stat(filepath.Join(dataDir, parent, dirName)); errors.Is(err, os.ErrNotExist) {
				c.remove(g)
			}
			continue
		}
		if c.emptySince(g, time.Minute) {
			c.deleteEmpty(g)
		}
	}
}

// children lists the groups in the codeset group.
func (c *controlGroups) children() []string {
	seen := map[string]bool{}
	var dirs []string
	if c.v2 {
		dirs = []string{filepath.Join(cgroupMount, c.parent2)}
	}
	for n, p := range c.parent1 {
		dirs = append(dirs, c.dir1(n, p))
	}
	var out []string
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// emptySince reports whether g holds no process and was made more than age ago.
func (c *controlGroups) emptySince(g *group, age time.Duration) bool {
	var dirs []string
	if c.v2 {
		dirs = []string{filepath.Join(cgroupMount, g.V2)}
	}
	for n, p := range g.V1 {
		dirs = append(dirs, c.dir1(cgroup1.Name(n), p))
	}
	for _, d := range dirs {
		st, err := os.Stat(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil || time.Since(st.ModTime()) < age {
			return false
		}
		// Its groups below (commands, agent) too.
		empty := true
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Name() == "cgroup.procs" {
				b, err := os.ReadFile(p)
				empty = empty && err == nil && len(strings.TrimSpace(string(b))) == 0
			}
			return nil
		})
		if !empty {
			return false
		}
	}
	return true
}

// deleteEmpty deletes g, which the kernel refuses while a process is in it.
func (c *controlGroups) deleteEmpty(g *group) {
	if c.v2 {
		if m, err := cgroup2.Load(g.V2); err == nil {
			m.Delete()
		}
		return
	}
	if cg, err := cgroup1.Load(g.path1(), cgroup1.WithHierarchy(c.hierarchy)); err == nil {
		cg.Delete()
	}
}

// describe says what the limits are, for the start-up log.
func (l Limits) describe() string {
	var parts []string
	if l.Memory > 0 {
		parts = append(parts, config.FormatBytes(l.Memory)+" of memory")
	}
	if l.CPUs > 0 {
		parts = append(parts, strconv.FormatFloat(l.CPUs, 'f', -1, 64)+" CPUs")
	}
	if l.CPUWeight > 0 {
		parts = append(parts, "CPU weight "+strconv.FormatInt(l.CPUWeight, 10))
	}
	if l.Pids > 0 {
		parts = append(parts, strconv.FormatInt(l.Pids, 10)+" processes")
	}
	if l.OpenFiles > 0 {
		parts = append(parts, strconv.FormatInt(l.OpenFiles, 10)+" open files per process")
	}
	if l.Tmp > 0 {
		parts = append(parts, config.FormatBytes(l.Tmp)+" each of /tmp, /var/tmp and home")
	}
	if l.Disk > 0 {
		parts = append(parts, config.FormatBytes(l.Disk)+" of work-tree changes")
	}
	return strings.Join(parts, ", ")
}

// setUpLimits takes the limits and, when they need control groups, the machine's: where they
// do not work here, the limits that need them are off, and DescribeLimits and Limited say why.
func (r *Runtime) setUpLimits(l Limits) {
	r.limits = l
	if !l.controlled() {
		return
	}
	g, err := newCgroups(r.dataDir, l)
	if err != nil {
		r.noGroups = err.Error()
		return
	}
	r.groups = g
	g.sweep(r.dataDir)
}

// Limited reports why the limits that need a control group (memory, CPU, processes) are not
// in force, or nil when they are (or none was asked for).
func (r *Runtime) Limited() error {
	if r.noGroups != "" {
		return errors.New(r.noGroups)
	}
	return nil
}

// DescribeLimits says, for the start-up log of `codeset serve`, what each sandbox may use.
func (r *Runtime) DescribeLimits() string {
	l := r.limits
	if r.groups == nil {
		l.Memory, l.CPUWeight, l.CPUs, l.Pids = 0, 0, 0, 0
	}
	if r.mode != Namespaces {
		l.Tmp = 0
	}
	if !r.overlay {
		l.Disk = 0
	}
	var s string
	switch d := l.describe(); {
	case d == "":
		s = "no resource limits on sandboxes"
	case r.groups == nil:
		s = "each sandbox limited to " + d
	case r.groups.v2:
		s = "each sandbox limited to " + d + " (cgroup v2)"
	default:
		s = "each sandbox limited to " + d + " (cgroup v1)"
	}
	if r.noGroups != "" {
		s += "; no memory, CPU or process limits: " + r.noGroups
	}
	return s
}

// newGroup makes the control group of the sandbox in dir (kind "sandbox" or "oracle") before its
// first process starts, and records it there; nil when the sandbox gets none.
func (r *Runtime) newGroup(kind, dir string) (*group, error) {
	if r.groups == nil {
		return nil, nil
	}
	g, err := r.groups.create(kind, filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	if r.userns {
		if err := r.groups.delegate(g); err != nil {
			r.groups.remove(g)
			return nil, err
		}
	}
	if err := record(dir, g); err != nil {
		r.groups.remove(g)
		return nil, err
	}
	return g, nil
}

// delegate lets the sandbox's root, which is SandboxUID on the host in a user namespace, move its
// own commands to their group: the files it writes become its own (on cgroup v2 the sandbox's
// group's cgroup.procs too, which the kernel checks for a move between two groups below it). No
// limit file is: a sandbox cannot raise its limits.
func (c *controlGroups) delegate(g *group) error {
	if c.limits.Pids <= 0 {
		return nil // commands stay where the agent is
	}
	var files []string
	if c.v2 {
		files = []string{filepath.Join(cgroupMount, g.V2, "cgroup.procs"), filepath.Join(cgroupMount, g.V2, commandsGroup, "cgroup.procs")}
	} else {
		p := path.Join(g.V1[string(cgroup1.Pids)], commandsGroup)
		files = []string{c.dir1(cgroup1.Pids, p, "cgroup.procs"), c.dir1(cgroup1.Pids, p, "tasks")}
	}
	for _, f := range files {
		if err := os.Chown(f, SandboxUID, SandboxUID); err != nil {
			return fmt.Errorf("control group %s: %w", g.Name, err)
		}
	}
	return nil
}

// startIn starts cmd in g (nil: where this process is).
func (r *Runtime) startIn(g *group, cmd *exec.Cmd) error {
	if g == nil {
		return cmd.Start()
	}
	return r.groups.start(g, cmd)
}

// removeGroup kills whatever is left in the control group of the sandbox in dir and deletes it;
// the sandbox may be one that an earlier server started.
func (r *Runtime) removeGroup(kind, dir string) error {
	if r.groups == nil {
		return nil
	}
	return r.groups.remove(r.groups.recorded(dir, kind, filepath.Base(dir)))
}

// limitArgs are the agent's flags for the limits it applies itself (open files, /tmp, disk) or
// names when a command hits them (its group's), for the sandbox in dir started in g (nil: none).
func (r *Runtime) limitArgs(g *group, dir string, p *passed) []string {
	l := r.limits
	var args []string
	if g != nil {
		args = append(args, "--cgroup", g.Name)
		if l.Memory > 0 {
			args = append(args, "--memory-limit", strconv.FormatInt(l.Memory, 10))
		}
		if l.Pids > 0 {
			args = append(args, "--pids-limit", strconv.FormatInt(l.Pids, 10))
		}
	}
	if l.OpenFiles > 0 {
		args = append(args, "--open-files", strconv.FormatInt(l.OpenFiles, 10))
	}
	if r.mode == Namespaces && l.Tmp > 0 {
		args = append(args, "--tmp-size", strconv.FormatInt(l.Tmp, 10))
	}
	// The work tree's changes are in its overlay's upper layer. A tree unpacked for the sandbox
	// (no overlays here) would have to be walked whole after every command: it is not measured.
	if upper := filepath.Join(dir, "upper"); l.Disk > 0 && r.overlay {
		if _, err := os.Stat(upper); err == nil {
			if name, err := p.path(upper); err == nil {
				args = append(args, "--disk-limit", strconv.FormatInt(l.Disk, 10), "--disk-dir", name)
			}
		}
	}
	return args
}
