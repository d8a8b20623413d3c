package local_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/local"
)

// TestVerifyInAnOracleSandbox, in every isolation mode this machine has: the oracle sees the
// session's changes on a pristine tree, not the session's protected edits nor its .git; the
// session is left as it was; a verifier that cannot apply its test patch is rejected; and in
// namespaces the session's processes cannot see the oracle's processes or files.
func TestVerifyInAnOracleSandbox(t *testing.T) {
	arch := archive(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			r := newRuntime(t, data, mode)
			ctx := context.Background()
			sp := spec("sess_oracle_"+mode, arch)
			info, err := r.Start(ctx, sp)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop(ctx, info)
			c := r.Client(info)
			// The agent edits a source file, deletes one, adds one, rewrites the protected
			// run.sh, commits it all and leaves a process that watches for an oracle.
			mustExec(t, c, `echo fixed > pkg/hello.txt && rm link.txt && echo new > added.txt && echo 'echo forged' > run.sh && `+
				`git -c user.name=a -c user.email=a@x add -A && git -c user.name=a -c user.email=a@x commit -qm agent && `+
				`(nohup sh -c 'while :; do ls -d /proc/*/root/*/oracles `+data+`/oracles 2>/dev/null >> /tmp/seen; sleep 0.01; done' >/dev/null 2>&1 &)`)
			before := mustExec(t, c, "cat pkg/hello.txt run.sh added.txt; git log --oneline | wc -l").Stdout

			// (Globs: a file the verifier's command names is the verifier's, and protected.)
			req := sandbox.VerifyRequest{Command: "sh run.sh; cat pkg/h* a*.txt; ls li* 2>&1; git log --oneline | wc -l",
				Protected: []string{"run.sh"}, Timeout: time.Minute}
			res, err := sandbox.Verify(ctx, r, info, sp, req)
			if err != nil {
				t.Fatal(err)
			}
			want := "ran\nfixed\nnew\nls: cannot access 'li*': No such file or directory\n1\n"
			if res.Stdout != want || !slices.Equal(res.IgnoredChanges, []string{"run.sh"}) {
				t.Fatalf("oracle saw %q, ignored %v; want %q and [run.sh]", res.Stdout, res.IgnoredChanges, want)
			}
			if after := mustExec(t, c, "cat pkg/hello.txt run.sh added.txt; git log --oneline | wc -l").Stdout; after != before {
				t.Errorf("the session changed: %q, was %q", after, before)
			}
			if mode == local.Namespaces {
				if seen := mustExec(t, c, "cat /tmp/seen 2>/dev/null; true").Stdout; seen != "" {
					t.Errorf("the session saw the oracle: %q", seen)
				}
			}
			_, err = sandbox.Verify(ctx, r, info, sp, sandbox.VerifyRequest{Command: "true", TestPatch: "diff --git a/nope b/nope\n--- a/nope\n+++ b/nope\n@@ -1 +1 @@\n-a\n+b\n"})
			if !errors.Is(err, sandbox.ErrRejected) || !strings.Contains(err.Error(), "test patch") {
				t.Errorf("a test patch that does not apply: %v", err)
			}
		})
	}
}

// TestVerificationsOfASessionTakeTurns: a session asking for many verifications at once gets one
// oracle at a time (its others wait), never a machine's worth of them for one session's price.
func TestVerificationsOfASessionTakeTurns(t *testing.T) {
	r := newRuntime(t, t.TempDir(), local.Auto)
	ctx := context.Background()
	sp := spec("sess_turns", archive(t))
	info, err := r.Start(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx, info)
	const n = 3
	var wg sync.WaitGroup
	runs := make([]time.Duration, n)
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := sandbox.Verify(ctx, r, info, sp, sandbox.VerifyRequest{Command: "sleep 0.3", Timeout: time.Minute})
			if err != nil {
				t.Error(err)
			}
			runs[i] = res.Duration
		}()
	}
	wg.Wait()
	// One after the other: the wall time holds every run's own duration.
	var sum time.Duration
	for _, d := range runs {
		sum += d
	}
	if wall := time.Since(began); wall < sum {
		t.Fatalf("%d verifications of one session overlapped: %s of wall time for %s of runs", n, wall, sum)
	}
}
