package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/sandbox"
	"github.com/codeset/codeset/shared/sandbox/agent"
	"github.com/codeset/codeset/shared/sandbox/changes"
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

// startOracle serves an oracle's agent on a fresh copy of the base repository. The oracle is
// the subreaper of this test process and kills its children after each run: these tests do not
// run in parallel with others that start processes.
func startOracle(t *testing.T) (*sandbox.AgentClient, string) {
	t.Helper()
	dir := t.TempDir()
	gitRepo(t, dir)
	return serve(t, agent.Options{WorkDir: dir, Secret: secret, Grace: 200 * time.Millisecond, Oracle: true}), dir
}

// agentWork is the layer of what an agent did to a copy of the base repository.
func agentWork(t *testing.T, work func(dir string)) []byte {
	t.Helper()
	pristine, dir := t.TempDir(), t.TempDir()
	gitRepo(t, pristine)
	gitRepo(t, dir)
	work(dir)
	var buf bytes.Buffer
	if _, err := changes.Diff(&buf, pristine, dir, changes.Limits{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	req := sandbox.VerifyRequest{TestPatch: testPatch, Command: "sh run_tests.sh",
		ReportPaths: []string{"out/*.txt"}, Timeout: time.Minute}

	// Untouched: the patched tests fail against the bug.
	c, _ := startOracle(t)
	res, err := c.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Reports["out/report.txt"]; got != "FAIL tests/test_id.sh\nFAIL tests/test_new.sh\n" {
		t.Fatalf("untouched report %q (result %+v)", got, res)
	}
	if res.Stdout != "verifier ran\n" || res.ExitCode != 0 || res.TimedOut || len(res.IgnoredChanges) != 0 {
		t.Errorf("result %+v", res)
	}

	// The agent fixes the bug, and also tries to game the oracle: it empties the existing test,
	// writes its own version of the test the patch adds, forges a report, rewrites the
	// verifier and a protected path, and plants a symlink where the report goes.
	req.Changes = agentWork(t, func(dir string) {
		os.WriteFile(filepath.Join(dir, "calc.sh"), []byte("add() { echo $(( $1 + $2 )); }\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "tests/test_id.sh"), []byte("true\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "tests/test_new.sh"), []byte("exit 1\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "run_tests.sh"), []byte("mkdir -p out; echo 'PASS forged' > out/report.txt\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "docs.md"), []byte("protected by the sample\n"), 0o644)
		os.MkdirAll(filepath.Join(dir, "out"), 0o755)
		os.Symlink("/etc/hostname", filepath.Join(dir, "out/report.txt"))
	})
	req.Protected = []string{"*.md"}
	c, dir := startOracle(t)
	res, err = c.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Reports["out/report.txt"]; got != "PASS tests/test_id.sh\nPASS tests/test_new.sh\n" {
		t.Fatalf("fixed report %q (result %+v)", got, res)
	}
	want := []string{"docs.md", "out/report.txt", "run_tests.sh", "tests/test_id.sh", "tests/test_new.sh"}
	got := append([]string{}, res.IgnoredChanges...)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("ignored changes %v, want %v", got, want)
	}
	if readFile(t, filepath.Join(dir, "calc.sh")) != "add() { echo $(( $1 + $2 )); }\n" {
		t.Error("the agent's fix was not applied")
	}
}

// TestVerifyKillsWhatTheVerifierLeft: a process the verifier leaves behind cannot write the
// report after it ends.
func TestVerifyKillsWhatTheVerifierLeft(t *testing.T) {
	c, dir := startOracle(t)
	res, err := c.Verify(context.Background(), sandbox.VerifyRequest{
		Command:     "setsid sh -c 'sleep 0.5; mkdir -p out; echo PASS forged > out/report.txt' >/dev/null 2>&1 < /dev/null & echo started",
		ReportPaths: []string{"out/report.txt"}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if len(res.Reports) != 0 {
		t.Fatalf("reports %v", res.Reports)
	}
	if _, err := os.Stat(filepath.Join(dir, "out/report.txt")); !os.IsNotExist(err) {
		t.Fatalf("a process the verifier left wrote the report after it ended: %v", err)
	}
}

// TestSessionAgentRefusesToVerify: a session's agent never runs the oracle in its own tree, which
// the graded agent controls.
func TestSessionAgentRefusesToVerify(t *testing.T) {
	c, dir := start(t)
	gitRepo(t, dir)
	if _, err := c.Verify(context.Background(), sandbox.VerifyRequest{Command: "touch ran"}); err == nil {
		t.Fatal("a session's agent ran the oracle")
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); !os.IsNotExist(err) {
		t.Fatal("the verifier ran in the session's tree")
	}
}

func TestVerifyTimeout(t *testing.T) {
	c, _ := startOracle(t)
	t0 := time.Now()
	res, err := c.Verify(context.Background(), sandbox.VerifyRequest{TestPatch: testPatch,
		Command: "sleep 30", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || time.Since(t0) > 5*time.Second || !strings.Contains(res.Message, "timed out") {
		t.Errorf("timeout: %+v after %s", res, time.Since(t0))
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	bad := strings.Replace(testPatch, " [ \"$(add 0 0)\" = 0 ]", " [ \"$(add 9 9)\" = 0 ]", 1)
	cases := map[string]sandbox.VerifyRequest{
		"a patch that does not apply": {TestPatch: bad, Command: "true"},
		"garbage":                     {TestPatch: "not a patch\n", Command: "true"},
		"no command":                  {TestPatch: testPatch},
		"a bad protected path":        {Command: "true", Protected: []string{"../x"}},
		"changes that leave the tree": {Command: "true", Changes: tarOf(t, "../escape", "x")},
	}
	for name, req := range cases {
		c, _ := startOracle(t)
		if _, err := c.Verify(ctx, req); !errors.Is(err, sandbox.ErrRejected) {
			t.Errorf("%s: err = %v, want ErrRejected", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(t.TempDir()), "escape")); !os.IsNotExist(err) {
		t.Error("a change left the tree")
	}
}

// tarOf is a layer of one regular file, named as given, however hostile.
func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	return buf.Bytes()
}
