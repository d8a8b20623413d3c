package grading

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return string(b)
}

// want is an expected test: its outcome and kind, and a piece of its details when it matters.
type want struct {
	outcome Outcome
	kind    string
	details string
	count   int
}

func checkReport(t *testing.T, rep Report, wants map[string]want) {
	t.Helper()
	got := map[string]Test{}
	for _, x := range rep.Tests {
		if _, dup := got[x.Name]; dup {
			t.Errorf("test %q reported twice in the merged report", x.Name)
		}
		got[x.Name] = x
	}
	for name, w := range wants {
		x, ok := got[name]
		if !ok {
			t.Errorf("missing test %q; have %v", name, names(rep))
			continue
		}
		if x.Outcome != w.outcome || x.Kind != w.kind {
			t.Errorf("%q: outcome %s/%s, want %s/%s (details %.200q)", name, x.Outcome, x.Kind, w.outcome, w.kind, x.Details)
		}
		if w.details != "" && !strings.Contains(x.Details, w.details) {
			t.Errorf("%q: details %.300q lack %q", name, x.Details, w.details)
		}
		if w.count != 0 && x.Count != w.count {
			t.Errorf("%q: count %d, want %d", name, x.Count, w.count)
		}
	}
	if len(got) != len(wants) {
		t.Errorf("%d tests, want %d: %v", len(got), len(wants), names(rep))
	}
}

func names(rep Report) []string {
	var n []string
	for _, x := range rep.Tests {
		n = append(n, x.Name+"="+string(x.Outcome))
	}
	return n
}

func TestParseRealReports(t *testing.T) {
	t.Parallel()
	pass := want{outcome: Passed}
	cases := []struct {
		name   string
		format string
		files  []string // report files; one file without report paths is read as stdout
		wants  map[string]want
	}{
		{"go test -json: subtests, a failing subtest, a skip, a build failure, a panic", FormatGoTestJSON, []string{"gotest/packages.json"}, map[string]want{
			"TestAdd":                  {Failed, KindFailure, "--- FAIL: TestAdd", 0},
			"TestAdd/zero":             pass,
			"TestAdd/positive":         pass,
			"TestAdd/wrong_on_purpose": {Failed, KindFailure, "Add(2, 2) = 4, want 5", 0},
			"TestSkipped":              {Skipped, KindSkip, "not on this platform", 0},
			"TestPasses":               pass,
			"TestBefore":               pass,
			"TestPanics":               {Failed, KindFailure, "assignment to entry in nil map", 0},
			"TestPanics/inner":         {Failed, KindFailure, "", 0},
			"example.com/demo/broken":  {Failed, KindBuild, "undefined: undefinedHelper", 0},
		}},
		{"go test -json: a test that never ends", FormatGoTestJSON, []string{"gotest/timeout.json"}, map[string]want{
			"TestQuick": pass,
			"TestHangs": {Failed, KindUnfinished, "panic: test timed out after 2s", 0},
		}},
		{"go test -json: os.Exit inside a test", FormatGoTestJSON, []string{"gotest/exit.json"}, map[string]want{
			"TestFine":        pass,
			"TestExitsMidway": {Failed, KindFailure, "unexpected call to os.Exit(0)", 0},
		}},
		{"pytest -rA: classes, parametrize, skip, xfail, xpass, errors", FormatPytestRA, []string{"pytest/rA.txt"}, map[string]want{
			"tests/test_calc.py::TestAdd::test_zero":         pass,
			"tests/test_calc.py::TestAdd::test_param[1-2-3]": pass,
			"tests/test_calc.py::test_plain":                 pass,
			"tests/test_calc.py:26":                          {Skipped, KindSkip, "not on this platform", 1},
			"tests/test_calc.py::test_expected_failure":      {Passed, KindXFail, "known bug", 0},
			"tests/test_calc.py::test_unexpected_pass":       {Passed, KindXPass, "fixed upstream", 0},
			"tests/test_calc.py::test_uses_broken_fixture":   {Failed, KindError, "RuntimeError", 0},
			"tests/test_calc.py::TestAdd::test_wrong":        {Failed, KindFailure, "AssertionError: arithmetic", 0},
			"tests/test_calc.py::TestAdd::test_param[2-2-5]": {Failed, KindFailure, "assert 4 == 5", 0},
			"tests/test_calc.py::test_raises":                {Failed, KindFailure, "KeyError", 0},
		}},
		{"pytest -rA: teardown error after a pass, skip group, strict xpass, ids with spaces", FormatPytestRA, []string{"pytest/teardown.txt"}, map[string]want{
			"tests/test_teardown.py::test_passes_then_teardown_fails": {Failed, KindError, "RuntimeError", 0},
			"tests/test_teardown.py::test_ids_with_spaces[a b]":       pass,
			"tests/test_teardown.py::test_ids_with_spaces[c - d]":     pass,
			"tests/test_teardown.py:16":                               {Skipped, KindSkip, "needs a GPU", 2},
			"tests/test_teardown.py::test_strict_xpass":               {Failed, KindFailure, "", 0},
		}},
		{"pytest -rA: a module that fails to import", FormatPytestRA, []string{"pytest/collection-error.txt"}, map[string]want{
			"tests/test_new_feature.py": {Failed, KindError, "", 0},
		}},
		{"JUnit from pytest", FormatJUnit, []string{"junit/pytest.xml"}, map[string]want{
			"tests.test_calc.TestAdd::test_zero":         pass,
			"tests.test_calc.TestAdd::test_wrong":        {Failed, KindFailure, "arithmetic is hard", 0},
			"tests.test_calc.TestAdd::test_param[1-2-3]": pass,
			"tests.test_calc.TestAdd::test_param[2-2-5]": {Failed, KindFailure, "assert 4 == 5", 0},
			"tests.test_calc::test_plain":                pass,
			"tests.test_calc::test_skipped":              {Skipped, KindSkip, "not on this platform", 0},
			"tests.test_calc::test_expected_failure":     {Passed, KindXFail, "known bug", 0},
			"tests.test_calc::test_unexpected_pass":      pass,
			"tests.test_calc::test_uses_broken_fixture":  {Failed, KindError, "database is down", 0},
			"tests.test_calc::test_raises":               {Failed, KindFailure, "KeyError", 0},
		}},
		{"JUnit from pytest: collection error", FormatJUnit, []string{"junit/pytest-collection-error.xml"}, map[string]want{
			"tests.test_new_feature": {Failed, KindError, "cannot import name 'multiply'", 0},
		}},
		{"JUnit from unittest-xml-reporting, two files", FormatJUnit, []string{"junit/unittest/TEST-test_shapes.TestShapes.xml", "junit/unittest/TEST-test_shapes.TestOutput.xml"}, map[string]want{
			"test_shapes.TestShapes::test_square_area":    pass,
			"test_shapes.TestShapes::test_circle_area":    {Failed, KindFailure, "12.56636 != 12.0", 0},
			"test_shapes.TestShapes::test_subtests (i=2)": {Failed, KindFailure, "2 not less than 2", 0},
			"test_shapes.TestShapes::test_raises":         {Failed, KindError, "ValueError: bad shape", 0},
			"test_shapes.TestShapes::test_triangle_area":  {Skipped, KindSkip, "triangles are not implemented", 0},
			"test_shapes.TestShapes::test_known_bug":      {Passed, KindXFail, "expected failure", 0},
			"test_shapes.TestOutput::test_prints":         pass,
		}},
		{"JUnit from Maven Surefire: failure, error, ignored, flaky, rerun failures", FormatJUnit, []string{"junit/surefire/TEST-com.example.CalcTest.xml", "junit/surefire/TEST-com.example.OtherTest.xml", "junit/surefire/TEST-com.example.FlakyTest.xml"}, map[string]want{
			"com.example.CalcTest::addsPositiveNumbers": pass,
			"com.example.CalcTest::isWrongOnPurpose":    {Failed, KindFailure, "expected:<5> but was:<4>", 0},
			"com.example.CalcTest::dividesByZero":       {Failed, KindError, "/ by zero", 0},
			"com.example.CalcTest::handlesOverflow":     {Skipped, KindSkip, "not supported yet", 0},
			"com.example.OtherTest::alwaysPasses":       pass,
			"com.example.FlakyTest::passesOnSecondTry":  {Passed, "", "first run fails", 0},
			"com.example.FlakyTest::alwaysFails":        {Failed, KindFailure, "never works", 0},
		}},
		{"JUnit from jest-junit: nested describe, skip, failure", FormatJUnit, []string{"junit/jest.xml"}, map[string]want{
			"add adds positive numbers":     pass,
			"add is wrong on purpose":       {Failed, KindFailure, "Expected: 5", 0},
			"add handles bigints":           {Skipped, KindSkip, "", 0},
			"add with zero is the identity": pass,
			"top-level test":                pass,
		}},
		{"JUnit from jest-junit: a suite that fails to load", FormatJUnit, []string{"junit/jest-suite-errors.xml"}, map[string]want{
			"add adds positive numbers":                   pass,
			"add is wrong on purpose":                     {Failed, KindFailure, "Expected: 5", 0},
			"add handles bigints":                         {Skipped, KindSkip, "", 0},
			"add with zero is the identity":               pass,
			"top-level test":                              pass,
			"Test suite failed to run::src/crash.test.js": {Failed, KindError, "Cannot find module", 0},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var src Sources
			if len(c.files) == 1 {
				src.Stdout = fixture(t, c.files[0])
			} else {
				src.Reports = map[string]string{}
				for _, f := range c.files {
					src.ReportPaths = append(src.ReportPaths, f)
					src.Reports[f] = fixture(t, f)
				}
			}
			rep, err := Parse(c.format, src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkReport(t, rep, c.wants)
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	junit := fixture(t, "junit/jest.xml")
	cases := []struct {
		name   string
		format string
		src    Sources
		code   string
	}{
		{"unknown format", "tap", Sources{Stdout: "ok 1"}, CodeFormatUnsupported},
		{"nothing on stdout", FormatGoTestJSON, Sources{Stdout: "  \n"}, CodeReportMissing},
		{"report file not written", FormatJUnit, Sources{ReportPaths: []string{"reports/junit.xml"}, Reports: map[string]string{}}, CodeReportMissing},
		{"one of two report files not written", FormatJUnit, Sources{ReportPaths: []string{"a.xml", "b.xml"}, Reports: map[string]string{"a.xml": junit}}, CodeReportMissing},
		{"glob matching nothing", FormatJUnit, Sources{ReportPaths: []string{"target/surefire-reports/TEST-*.xml"}, Reports: map[string]string{"target/other.xml": junit}}, CodeReportMissing},
		{"empty report file", FormatJUnit, Sources{ReportPaths: []string{"r.xml"}, Reports: map[string]string{"r.xml": ""}}, CodeReportMissing},
		{"JUnit cut short", FormatJUnit, Sources{Stdout: junit[:len(junit)/2]}, CodeReportMalformed},
		{"HTML instead of JUnit", FormatJUnit, Sources{Stdout: "<html><body><testcase name='x'/></body></html>"}, CodeReportMalformed},
		{"plain text instead of JUnit", FormatJUnit, Sources{Stdout: "Ran 3 tests\nOK\n"}, CodeReportMalformed},
		{"testcase without a name", FormatJUnit, Sources{Stdout: `<testsuite><testcase classname="a"/></testsuite>`}, CodeReportMalformed},
		{"JUnit without tests (pytest, no tests collected)", FormatJUnit, Sources{Stdout: fixture(t, "junit/pytest-no-tests.xml")}, CodeReportEmpty},
		{"go test -json without events", FormatGoTestJSON, Sources{Stdout: "ok  \texample.com/x\t0.01s\n"}, CodeReportMalformed},
		{"go test -json of a package without tests", FormatGoTestJSON, Sources{Stdout: fixture(t, "gotest/no-tests.json")}, CodeReportEmpty},
		{"JUnit given as go test -json", FormatGoTestJSON, Sources{Stdout: junit}, CodeReportMalformed},
		{"pytest ran no test", FormatPytestRA, Sources{Stdout: fixture(t, "pytest/no-tests.txt")}, CodeReportEmpty},
		{"pytest without -rA", FormatPytestRA, Sources{Stdout: "============================= test session starts ==============================\ncollected 3 items\n\ntests/test_x.py ...                                   [100%]\n\n============================== 3 passed in 0.01s ===============================\n"}, CodeReportMalformed},
		{"not pytest output", FormatPytestRA, Sources{Stdout: "make: *** No rule to make target 'test'.  Stop.\n"}, CodeReportMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Parse(c.format, c.src)
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("Parse = %v, %v; want a grading error %s", names(rep), err, c.code)
			}
			if ge.Code != c.code {
				t.Fatalf("code %s (%s), want %s", ge.Code, ge.Message, c.code)
			}
			if ge.Message == "" {
				t.Fatal("an error without a message")
			}
		})
	}
}

func TestParseReportPaths(t *testing.T) {
	t.Parallel()
	surefire := map[string]string{}
	for _, f := range []string{"TEST-com.example.CalcTest.xml", "TEST-com.example.OtherTest.xml", "TEST-com.example.FlakyTest.xml"} {
		surefire["/workspace/repo/target/surefire-reports/"+f] = fixture(t, "junit/surefire/"+f)
	}
	cases := []struct {
		name  string
		paths []string
		tests int
	}{
		{"a relative glob matches absolute report paths", []string{"target/surefire-reports/TEST-*.xml"}, 7},
		{"an exact absolute path", []string{"/workspace/repo/target/surefire-reports/TEST-com.example.OtherTest.xml"}, 1},
		{"overlapping patterns read each file once", []string{"target/surefire-reports/TEST-*.xml", "./target/surefire-reports/TEST-com.example.CalcTest.xml"}, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Parse(FormatJUnit, Sources{Stdout: "not a report", ReportPaths: c.paths, Reports: surefire})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(rep.Tests) != c.tests {
				t.Fatalf("%d tests, want %d: %v", len(rep.Tests), c.tests, names(rep))
			}
		})
	}
}

// A report file may repeat a test (pytest rerun plugins, a test in two report files): the worst
// outcome stands, so a failure is never hidden by a later pass.
func TestParseMergesWorstOutcome(t *testing.T) {
	t.Parallel()
	a := `<testsuite><testcase classname="m" name="t"><failure message="boom"/></testcase><testcase classname="m" name="u"><skipped/></testcase></testsuite>`
	b := `<testsuites><testsuite><testsuite><testcase classname="m" name="t"/><testcase classname="m" name="u"/></testsuite></testsuite></testsuites>`
	for _, order := range [][]string{{"a.xml", "b.xml"}, {"b.xml", "a.xml"}} {
		rep, err := Parse(FormatJUnit, Sources{ReportPaths: order, Reports: map[string]string{"a.xml": a, "b.xml": b}})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, map[string]want{
			"m::t": {Failed, KindFailure, "boom", 0},
			"m::u": {Passed, "", "", 0},
		})
	}
}

func TestParseCapsDetails(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("é", maxDetails)
	rep, err := Parse(FormatJUnit, Sources{Stdout: `<testsuite><testcase name="t"><failure>` + huge + `</failure></testcase></testsuite>`})
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Tests[0].Details
	if len(d) > maxDetails+64 || !strings.Contains(d, "bytes truncated") {
		t.Fatalf("details of %d bytes not capped", len(d))
	}
	if !strings.HasPrefix(d, "éé") || strings.ContainsRune(d, '\uFFFD') {
		t.Fatal("details cut inside a character")
	}
}
