// Package grading turns a verifier's output into a verdict: parsers for the report formats a
// sample's verifier may produce (JUnit XML, `go test -json`, pytest `-rA` summary lines) and the
// grading rules (Codeset's is_success and SWE-bench's FULL / PARTIAL / NO resolution).
//
// It talks to nothing: the sandbox runs the verifier and hands over its stdout and report files;
// this package only reads them.
package grading

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Report formats a sample's environment may name (sandbox.Environment.ReportFormat).
const (
	FormatJUnit      = "junit"
	FormatGoTestJSON = "go-test-json"
	FormatPytestRA   = "pytest-rA"
)

// Error codes of a report that cannot be graded. They are the job's ErrorInfo code.
const (
	CodeReportMissing     = "REPORT_MISSING"            // the verifier wrote no report (or no output at all)
	CodeReportMalformed   = "REPORT_MALFORMED"          // the report is not what its format says
	CodeReportEmpty       = "REPORT_EMPTY"              // a well-formed report that lists no test
	CodeFormatUnsupported = "REPORT_FORMAT_UNSUPPORTED" // the sample names a format this oracle cannot read
)

// Error is a report that cannot be graded. A verification never passes on one.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// Outcome is what happened to one test.
type Outcome string

const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// rank orders outcomes when one test is reported more than once (a pytest test that passed and
// then errored in teardown, a test run by two packages or two report files): the worst wins, so
// a failure is never hidden by a pass.
func (o Outcome) rank() int {
	switch o {
	case Failed:
		return 3
	case Passed:
		return 2
	default:
		return 1
	}
}

// Kinds say more about an outcome than passed / failed / skipped.
const (
	KindFailure    = "failure"    // an assertion failed
	KindError      = "error"      // the test raised, or its setup / teardown did
	KindUnfinished = "unfinished" // the test started and never reported an end (crash, timeout)
	KindBuild      = "build"      // the package around the tests failed to build
	KindPackage    = "package"    // the package failed outside any single test (TestMain, init, exit code)
	KindMissing    = "missing"    // listed in the sample but absent from the report
	KindXFail      = "xfail"      // an expected failure that failed as expected (counts as passed, as in SWE-bench)
	KindXPass      = "xpass"      // an expected failure that passed (non-strict: counts as passed)
	KindSkip       = "skip"
)

// Test is one test as the report tells it.
type Test struct {
	Name     string
	Outcome  Outcome
	Kind     string
	Details  string  // failure message and text, skip reason, captured output of a failure
	Duration float64 // seconds, when the report says
	Count    int     // tests this entry stands for: pytest groups skips by location ("SKIPPED [3] file:line")

	group bool // a pytest skip group, named by its location rather than a test id
}

// Report is the tests of one verifier run, one entry per test name, in the order first seen.
type Report struct {
	Tests []Test
}

// maxDetails caps the details kept per test: a failing test's traceback is useful, a megabyte of
// captured output in a read-model document is not.
const maxDetails = 8 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[... %d bytes truncated]", len(s)-cut)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// builder merges the entries of one or more sources into a Report.
type builder struct {
	index map[string]int
	tests []Test
}

func (b *builder) add(t Test) {
	if t.Count == 0 {
		t.Count = 1
	}
	t.Details = truncate(t.Details, maxDetails)
	if b.index == nil {
		b.index = map[string]int{}
	}
	i, seen := b.index[t.Name]
	if !seen {
		b.index[t.Name] = len(b.tests)
		b.tests = append(b.tests, t)
		return
	}
	old := &b.tests[i]
	switch {
	case t.Outcome.rank() > old.Outcome.rank():
		t.Duration += old.Duration
		*old = t
	case t.group && old.group:
		// Two pytest skip groups at one location (different reasons): both count.
		old.Count += t.Count
		old.Details = truncate(old.Details+"\n"+t.Details, maxDetails)
	default:
		old.Duration += t.Duration
	}
}

func (b *builder) report() Report { return Report{Tests: b.tests} }

// Sources are what a verifier run left behind.
type Sources struct {
	Stdout      string
	ReportPaths []string          // the files the sample says its verifier writes (may be globs)
	Reports     map[string]string // path -> content of each report file collected
}

// Parse reads the tests of one verifier run. Report files are read when the sample names some,
// stdout otherwise. It never returns an empty report: no test at all is an *Error, and so is a
// missing or malformed report.
func Parse(format string, src Sources) (Report, error) {
	var parse func(name, text string, b *builder) error
	switch format {
	case FormatJUnit:
		parse = parseJUnit
	case FormatGoTestJSON:
		parse = parseGoTestJSON
	case FormatPytestRA:
		parse = parsePytestRA
	default:
		return Report{}, errorf(CodeFormatUnsupported, "report format %q is not one of %s, %s, %s", format, FormatJUnit, FormatGoTestJSON, FormatPytestRA)
	}
	texts, err := pick(src)
	if err != nil {
		return Report{}, err
	}
	var b builder
	for _, t := range texts {
		if strings.TrimSpace(t.text) == "" {
			return Report{}, errorf(CodeReportMissing, "%s is empty", t.name)
		}
		if err := parse(t.name, t.text, &b); err != nil {
			return Report{}, err
		}
	}
	if len(b.tests) == 0 {
		return Report{}, errorf(CodeReportEmpty, "%s lists no test", describe(texts))
	}
	return b.report(), nil
}

type namedText struct{ name, text string }

// pick chooses the texts to parse: every report file matching the sample's report paths (each
// path must match at least one file), or the verifier's stdout when the sample names none.
func pick(src Sources) ([]namedText, error) {
	if len(src.ReportPaths) == 0 {
		return []namedText{{"the verifier's stdout", src.Stdout}}, nil
	}
	found := make([]string, 0, len(src.Reports))
	for p := range src.Reports {
		found = append(found, p)
	}
	sort.Strings(found)
	var out []namedText
	taken := map[string]bool{}
	for _, want := range src.ReportPaths {
		n := 0
		for _, p := range found {
			if p == want || matches(want, p) {
				n++
				if !taken[p] {
					taken[p] = true
					out = append(out, namedText{p, src.Reports[p]})
				}
			}
		}
		if n == 0 {
			return nil, errorf(CodeReportMissing, "the verifier wrote no report at %s", want)
		}
	}
	return out, nil
}

// matches reports whether the report file p matches pattern want, a path.Match glob that may
// also be written relative to the work dir while p is absolute (or the reverse).
func matches(want, p string) bool {
	want, p = strings.TrimPrefix(path.Clean(want), "./"), strings.TrimPrefix(path.Clean(p), "./")
	if ok, _ := path.Match(want, p); ok {
		return true
	}
	// A relative pattern matches an absolute path by its trailing components.
	if !strings.HasPrefix(want, "/") && strings.HasPrefix(p, "/") {
		parts := strings.Split(p, "/")
		depth := len(strings.Split(want, "/"))
		if depth <= len(parts) {
			tail := strings.Join(parts[len(parts)-depth:], "/")
			ok, _ := path.Match(want, tail)
			return ok
		}
	}
	return false
}

func describe(texts []namedText) string {
	if len(texts) == 1 {
		return texts[0].name
	}
	names := make([]string, len(texts))
	for i, t := range texts {
		names[i] = t.name
	}
	return "the reports " + strings.Join(names, ", ")
}
