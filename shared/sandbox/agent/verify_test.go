package agent_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
)

// The repository at its base commit: a function with a bug, a test of it, and a verifier that
// runs every test script and writes one line per test into a report.
var baseFiles = map[string]string{
	"calc.sh":          "add() { echo $(( $1 - $2 )); }\n", // the bug: subtracts
	"tests/test_id.sh": ". ./calc.sh\n[ \"$(add 0 0)\" = 0 ]\n",
	"run_tests.sh": `#!/bin/sh
mkdir -p out
for t in tests/*.sh; do
  if sh "$t"; then echo "PASS $t"; else echo "FAIL $t"; fi
done > out/report.txt
echo verifier ran
`,
}

// The test patch adds a test of the bug to tests/test_id.sh (a file at base) and a new test file.
const testPatch = `diff --git a/tests/test_id.sh b/tests/test_id.sh
--- a/tests/test_id.sh
+++ b/tests/test_id.sh
@@ -1,2 +1,3 @@
 . ./calc.sh
 [ "$(add 0 0)" = 0 ]
+[ "$(add 2 2)" = 4 ]
diff --git a/tests/test_new.sh b/tests/test_new.sh
new file mode 100644
--- /dev/null
+++ b/tests/test_new.sh
@@ -0,0 +1,2 @@
+. ./calc.sh
+[ "$(add 1 2)" = 3 ]
`

func gitRepo(t *testing.T, dir string) string {
	t.Helper()
	for name, content := range baseFiles {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "base")
	return git("rev-parse", "HEAD")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestVerify(t *testing.T) {
	c, dir := start(t)
	base := gitRepo(t, dir)
	ctx := context.Background()
	req := sandbox.VerifyRequest{TestPatch: testPatch, BaseCommit: base, Command: "sh run_tests.sh",
		ReportPaths: []string{"out/*.txt"}, Timeout: time.Minute}

	// Untouched: the patched tests fail against the bug.
	res, err := c.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Reports["out/report.txt"]; got != "FAIL tests/test_id.sh\nFAIL tests/test_new.sh\n" {
		t.Fatalf("untouched report %q (result %+v)", got, res)
	}
	if res.Stdout != "verifier ran\n" || res.ExitCode != 0 || res.TimedOut {
		t.Errorf("result %+v", res)
	}
	// Verifying left the tree as it was: the new test file is gone, the old one back at base.
	if _, err := os.Stat(filepath.Join(dir, "tests/test_new.sh")); !os.IsNotExist(err) {
		t.Errorf("tests/test_new.sh left behind: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "tests/test_id.sh")); got != baseFiles["tests/test_id.sh"] {
		t.Errorf("tests/test_id.sh after verify: %q", got)
	}

	// The agent fixes the bug, and also tries to game the oracle: it empties the existing test
	// and writes its own version of the test the patch adds.
	os.WriteFile(filepath.Join(dir, "calc.sh"), []byte("add() { echo $(( $1 + $2 )); }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tests/test_id.sh"), []byte("true\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tests/test_new.sh"), []byte("exit 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "out/report.txt"), []byte("PASS forged\n"), 0o644)
	if out, err := exec.Command("git", "-C", dir, "add", "tests/test_id.sh").CombinedOutput(); err != nil {
		t.Fatalf("git add: %v %s", err, out)
	}
	res, err = c.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Reports["out/report.txt"]; got != "PASS tests/test_id.sh\nPASS tests/test_new.sh\n" {
		t.Fatalf("fixed report %q", got)
	}
	// The agent's own changes stay in place, test files included.
	for name, want := range map[string]string{"calc.sh": "add() { echo $(( $1 + $2 )); }\n",
		"tests/test_id.sh": "true\n", "tests/test_new.sh": "exit 1\n"} {
		if got := readFile(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s after verify: %q, want the agent's %q", name, got, want)
		}
	}

	// What the agent staged is still staged.
	if out, _ := exec.Command("git", "-C", dir, "show", ":tests/test_id.sh").Output(); string(out) != "true\n" {
		t.Errorf("the index after verify holds %q, want the agent's staged version", out)
	}

	// A stale report is not graded: a verifier that writes none yields none.
	os.WriteFile(filepath.Join(dir, "out/report.txt"), []byte("PASS forged\n"), 0o644)
	res, err = c.Verify(ctx, sandbox.VerifyRequest{TestPatch: testPatch, BaseCommit: base, Command: "echo no report",
		ReportPaths: []string{"out/report.txt"}, Timeout: time.Minute})
	if err != nil || len(res.Reports) != 0 {
		t.Errorf("stale report collected: %v %v", res.Reports, err)
	}
}

func TestVerifyTimeout(t *testing.T) {
	c, dir := start(t)
	base := gitRepo(t, dir)
	t0 := time.Now()
	res, err := c.Verify(context.Background(), sandbox.VerifyRequest{TestPatch: testPatch, BaseCommit: base,
		Command: "sleep 30", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || time.Since(t0) > 5*time.Second || !strings.Contains(res.Message, "timed out") {
		t.Errorf("timeout: %+v after %s", res, time.Since(t0))
	}
	if got := readFile(t, filepath.Join(dir, "tests/test_id.sh")); got != baseFiles["tests/test_id.sh"] {
		t.Errorf("tests/test_id.sh after a timed-out verify: %q", got)
	}
}

func TestVerifyRejects(t *testing.T) {
	c, dir := start(t)
	base := gitRepo(t, dir)
	ctx := context.Background()
	bad := strings.Replace(testPatch, " [ \"$(add 0 0)\" = 0 ]", " [ \"$(add 9 9)\" = 0 ]", 1)
	cases := map[string]sandbox.VerifyRequest{
		"a patch that does not apply": {TestPatch: bad, BaseCommit: base, Command: "true"},
		"garbage":                     {TestPatch: "not a patch\n", BaseCommit: base, Command: "true"},
		"an unknown base":             {TestPatch: testPatch, BaseCommit: strings.Repeat("1", 40), Command: "true"},
		"no command":                  {TestPatch: testPatch, BaseCommit: base},
	}
	for name, req := range cases {
		if _, err := c.Verify(ctx, req); !errors.Is(err, sandbox.ErrRejected) {
			t.Errorf("%s: err = %v, want ErrRejected", name, err)
		}
	}
	if got := readFile(t, filepath.Join(dir, "tests/test_id.sh")); got != baseFiles["tests/test_id.sh"] {
		t.Errorf("tests/test_id.sh after rejected verifies: %q", got)
	}
}
