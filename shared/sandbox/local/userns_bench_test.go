package local

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkUserNamespaceStart: starting a sandbox's first process (`unshare` with the sandboxes'
// namespaces, running `true`) in a user namespace made for it, or in one made ahead, from a
// process holding a server's worth of memory (a forked process copies its page tables):
//
//	go test -run '^$' -bench UserNamespaceStart -benchtime 50x ./shared/sandbox/local/
func BenchmarkUserNamespaceStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("user namespaces with a map need root")
	}
	unshare, err := namespacesWork()
	if err != nil {
		b.Skip(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		b.Skip(err)
	}
	// 256 MiB touched: about what `codeset serve` holds with a few hundred sessions.
	ballast := make([]byte, 256<<20)
	for i := range ballast {
		if i%4096 == 0 {
			ballast[i] = 1
		}
	}
	run := func(b *testing.B, enter func(*exec.Cmd) func()) {
		for b.Loop() {
			cmd := exec.Command(unshare, append(unshareArgs, "--", "true")...)
			release := enter(cmd)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			release()
		}
	}
	b.Run("new", func(b *testing.B) {
		run(b, func(cmd *exec.Cmd) func() { inUserNamespace(cmd); return func() {} })
	})
	b.Run("made-ahead", func(b *testing.B) {
		p := newUsernsPool(bash, unshare, 1)
		defer p.close()
		run(b, func(cmd *exec.Cmd) func() {
			b.StopTimer()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				p.mu.Lock()
				n := len(p.ready)
				p.mu.Unlock()
				if n > 0 || time.Now().After(deadline) {
					break
				}
			}
			b.StartTimer()
			release, ok := p.enter(cmd)
			if !ok {
				b.Fatal("no namespace made ahead")
			}
			return release
		})
	})
	_ = ballast[len(ballast)-1]
}
