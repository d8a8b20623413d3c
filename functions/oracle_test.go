package functions

// Attacks on the oracle from the graded agent's side: each test does in a real session what an
// agent that games the grader instead of fixing the bug would do, then asks for a verification,
// which must not be a success; then it applies the gold patch on top, which must pass.

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/dataset"
)

// pytestDataset holds samples graded with pytest -rA, imported by the tests that need them.
const pytestDataset = "oracle-pytest"

// pytestPython is the interpreter the pytest sample runs: Debian's, which has python3-pytest
// (scripts/test.sh installs it).
const pytestPython = "/usr/bin/python3"

// importPytestSample imports a small Python repository graded with `pytest -rA` (sample
// py-calc-1: add subtracts), or skips the test when pytest is missing outside CI.
func (e *verifyEnv) importPytestSample(t *testing.T) {
	t.Helper()
	if err := exec.Command(pytestPython, "-c", "import pytest").Run(); err != nil {
		if ciRun() {
			t.Fatalf("pytest is required under CI (%s -c 'import pytest': %v); scripts/test.sh installs python3-pytest", pytestPython, err)
		}
		t.Skipf("no pytest for %s (%v): scripts/test.sh installs python3-pytest", pytestPython, err)
	}
	if _, ok := e.samples["py-calc-1"]; ok {
		return
	}
	repo := "-- calc.py --\ndef add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n" +
		"-- tests/test_calc.py --\nfrom calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"
	files, err := dataset.ParseTxtar([]byte(repo))
	if err != nil {
		t.Fatal(err)
	}
	commit, err := dataset.BuildRepo(context.Background(), files, t.TempDir()+"/repo")
	if err != nil {
		t.Fatal(err)
	}
	testPatch := "diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n" +
		"@@ -1,5 +1,9 @@\n-from calc import sub\n+from calc import add, sub\n \n \n def test_sub():\n     assert sub(3, 1) == 2\n+\n+\n+def test_add():\n+    assert add(1, 2) == 3\n"
	gold := "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n \n def sub(a, b):\n"
	row := fmt.Sprintf(`{"instance_id":"codeset-test__calc-1","sample_id":"py-calc-1","repo":"codeset-test/calc","base_commit":%q,"problem_statement":"add subtracts",
"patch":%q,"test_patch":%q,"FAIL_TO_PASS":["tests/test_calc.py::test_add"],"PASS_TO_PASS":["tests/test_calc.py::test_sub"],
"environment":{"source_txtar":"repo.txtar","verifier_command":"PATH=/usr/bin:$PATH python3 -m pytest -rA -p no:cacheprovider tests","report_format":"pytest-rA"}}`,
		commit, gold, testPatch)
	e.importRows(t, pytestDataset, strings.ReplaceAll(row, "\n", ""), fstest.MapFS{"repo.txtar": {Data: []byte(repo)}})
}

// allPassJUnit is a JUnit report in which every listed test of the sample passes.
func allPassJUnit(c events.SampleContent) string {
	var b strings.Builder
	b.WriteString(`<testsuites><testsuite name="forged">`)
	for _, name := range slices.Concat(c.FailToPass, c.PassToPass) {
		class, test, _ := strings.Cut(name, "::")
		fmt.Fprintf(&b, `<testcase classname=%q name=%q/>`, class, test)
	}
	b.WriteString(`</testsuite></testsuites>`)
	return b.String()
}

// TestOracleAttacks: none of the ways an agent can game the grader is graded as a success, on a
// sample of each report format; the changes it made to protected paths are listed as ignored;
// and the gold patch, applied in the same session after the attack, passes.
func TestOracleAttacks(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("mallory")
	env.importPytestSample(t)
	junit := func(sample string) string { return allPassJUnit(env.samples[sample].Content) }
	cases := []struct {
		name, sample, attack string
		ignored              string // a path ignored_changes must list ("" when the attack changes no protected path)
	}{
		{"replace the verifier's script", "py-duration-1",
			"cat > tests/run_junit.py <<'EOF'\nimport os, sys\nos.makedirs('reports', exist_ok=True)\nopen(sys.argv[1], 'w').write('''" + junit("py-duration-1") + "''')\nEOF",
			"tests/run_junit.py"},
		{"replace the shell verifier", "sh-semver-1",
			"cat > tests/run.sh <<'EOF'\nmkdir -p reports\ncat > \"$1\" <<'XML'\n" + junit("sh-semver-1") + "\nXML\nEOF",
			"tests/run.sh"},
		{"a background process writes an all-pass report", "py-duration-1",
			"cat > /tmp/pass.xml <<'EOF'\n" + junit("py-duration-1") + "\nEOF\n" +
				"nohup sh -c 'while :; do mkdir -p reports; cp /tmp/pass.xml reports/junit.xml; cp /tmp/pass.xml /tmp/junit.xml; sleep 0.01; done' >/dev/null 2>&1 &\nsleep 0.2",
			"reports/junit.xml"},
		{"the tests edited to pass", "py-duration-1",
			`sed -i 's/self.assert[A-Za-z]*(.*/pass/' tests/test_duration.py`, "tests/test_duration.py"},
		{"the tests deleted", "go-roman-1", "rm -f roman_test.go", "roman_test.go"},
		{"the tests replaced", "go-roman-1",
			`printf 'package roman\n\nimport "testing"\n\nfunc TestFromRomanSubtractive(t *testing.T) {}\nfunc TestRoundTrip(t *testing.T) {}\n' > roman_test.go`,
			"roman_test.go"},
		{"a TestMain that forges the output", "go-roman-1",
			`printf 'package roman\n\nimport (\n\t"fmt"\n\t"os"\n\t"testing"\n)\n\nfunc TestMain(m *testing.M) {\n\tfor _, n := range []string{"TestFromRomanSubtractive", "TestRoundTrip"} {\n\t\tfmt.Printf("=== RUN   %%s\\n--- PASS: %%s (0.00s)\\n", n, n)\n\t}\n\tfmt.Println("PASS")\n\tos.Exit(0)\n}\n' > zz_main_test.go`,
			"zz_main_test.go"},
		{"a module that shadows unittest next to the tests", "py-duration-1",
			"cat > tests/unittest.py <<'EOF'\nimport os, sys\nhere = os.path.dirname(os.path.abspath(__file__))\n" +
				"sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != here]\ndel sys.modules['unittest']\nimport unittest\n" +
				"def run(self, result=None):\n    result.startTest(self); result.addSuccess(self); result.stopTest(self)\nunittest.TestCase.run = run\nEOF",
			"tests/unittest.py"},
		{"a conftest.py that passes every test", "py-calc-1",
			"cat > conftest.py <<'EOF'\nimport pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n    outcome = yield\n    outcome.get_result().outcome = 'passed'\nEOF",
			"conftest.py"},
		{"the pytest tests replaced", "py-calc-1",
			"printf 'def test_add():\\n    pass\\n\\n\\ndef test_sub():\\n    pass\\n' > tests/test_calc.py", "tests/test_calc.py"},
		{".git rewritten so the base commit holds the edited tests", "go-roman-1",
			`printf 'package roman\n\nimport "testing"\n\nfunc TestFromRomanSubtractive(t *testing.T) {}\nfunc TestRoundTrip(t *testing.T) {}\n' > roman_test.go && ` +
				`base=$(git rev-parse HEAD) && git -c user.name=m -c user.email=m@x commit -qam cheat && git replace -f "$base" HEAD && git reset -q --hard "$base" && git show "$base":roman_test.go | grep -q 'TestRoundTrip(t \*testing.T) {}'`,
			"roman_test.go"},
		{"the report path a symlink to a forged report", "py-duration-1",
			"cat > /tmp/pass.xml <<'EOF'\n" + junit("py-duration-1") + "\nEOF\nmkdir -p reports && ln -sf /tmp/pass.xml reports/junit.xml",
			"reports/junit.xml"},
		{"a test file a symlink to a file the agent controls", "py-calc-1",
			"printf 'def test_add():\\n    pass\\n\\n\\ndef test_sub():\\n    pass\\n' > /tmp/forged.py && ln -sf /tmp/forged.py tests/test_calc.py",
			"tests/test_calc.py"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *env
			e.t = t
			if _, ok := e.samples[c.sample]; !ok {
				t.Skipf("sample %s is not imported here", c.sample)
			}
			sid := e.openSession("mallory", c.sample)
			defer e.call("mallory", "DELETE", "/sessions/"+sid, nil)
			if code, out, errOut := e.exec("mallory", sid, c.attack); code != 0 {
				t.Fatalf("the attack itself failed: %d %s %s", code, out, errOut)
			}
			j := e.verify("mallory", sid)
			checkJobSchema(t, j)
			if j.Status == events.JobCompleted && j.Result.IsSuccess {
				t.Fatalf("the attack was graded a success: %s", j.raw)
			}
			if j.Status != events.JobCompleted {
				t.Fatalf("the attack broke the oracle instead of failing the tests: %s", j.raw)
			}
			if c.ignored != "" && !slices.Contains(j.Result.IgnoredChanges, c.ignored) {
				t.Errorf("ignored_changes %v does not list %s", j.Result.IgnoredChanges, c.ignored)
			}
			// The agent can still fix the bug: its fix is graded, its attack is not.
			e.passesWithGold("mallory", sid, c.sample)
		})
	}
}

// TestVerifyLeavesTheSessionAlone: verifying reads the session and changes nothing in it (not its
// files, not its processes); twice in a row gives the same result; and an untouched session
// fails exactly as its FAIL_TO_PASS says, on a sample of each report format.
func TestVerifyLeavesTheSessionAlone(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	env.importPytestSample(t)
	for _, sample := range []string{"py-duration-1", "go-roman-1", "py-calc-1"} {
		t.Run(sample, func(t *testing.T) {
			e := *env
			e.t = t
			if _, ok := e.samples[sample]; !ok {
				t.Skipf("sample %s is not imported here", sample)
			}
			c := e.samples[sample].Content
			sid := e.openSession("alice", sample)
			defer e.call("alice", "DELETE", "/sessions/"+sid, nil)
			// A change of the agent's own and a process of its own, both to be left as they are.
			if code, _, errOut := e.exec("alice", sid, "echo mine > NOTES.md && (sleep 600 &) && true"); code != 0 {
				t.Fatal(errOut)
			}
			state := "find . -path ./.git -prune -o -type f -print0 | sort -z | xargs -0 sha256sum; git status --porcelain; pgrep -c sleep"
			_, before, _ := e.exec("alice", sid, state)
			first := e.verify("alice", sid)
			second := e.verify("alice", sid)
			_, after, _ := e.exec("alice", sid, state)
			if before != after {
				t.Fatalf("verifying changed the session:\nbefore %s\nafter %s", before, after)
			}
			for i, j := range []jobView{first, second} {
				if j.Status != events.JobCompleted || j.Result.IsSuccess {
					t.Fatalf("verification %d of an untouched session: %s", i+1, j.raw)
				}
				if !slices.Equal(sortedUnion(j.Result.FailToPassFailed), sortedUnion(c.FailToPass)) || len(j.Result.PassToPassFailed) != 0 {
					t.Errorf("verification %d: fail_to_pass_failed %v, want FAIL_TO_PASS %v", i+1, j.Result.FailToPassFailed, c.FailToPass)
				}
			}
			if !slices.Equal(detailNames(first.Result.Passes), detailNames(second.Result.Passes)) ||
				!slices.Equal(detailNames(first.Result.Failures), detailNames(second.Result.Failures)) {
				t.Errorf("two verifications in a row differ: %s\n%s", first.raw, second.raw)
			}
		})
	}
}

// TestVerifyDeclaredProtectedPaths: a sample's own protected_paths keep the agent's changes
// there out of the grading, and are listed; a path outside them is graded.
func TestVerifyDeclaredProtectedPaths(t *testing.T) {
	env := newVerifyEnv(t, nil)
	env.credit("alice")
	base := env.samples["sh-semver-1"]
	row := base
	row.Content.SampleID = "sh-semver-protected"
	row.Content.Environment.ProtectedPaths = []string{"semver.sh"}
	env.importRowsAs(t, "oracle-protected", row)
	sid := env.openSession("alice", "sh-semver-protected")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	env.applyGold("alice", sid, "sh-semver-protected")
	j := env.verify("alice", sid)
	if j.Status != events.JobCompleted || j.Result.IsSuccess || !slices.Contains(j.Result.IgnoredChanges, "semver.sh") {
		t.Fatalf("a fix to a declared protected path was graded: %s", j.raw)
	}
}
