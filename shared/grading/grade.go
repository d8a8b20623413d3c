package grading

import (
	"fmt"
	"time"
)

// Expectation is what a sample says of its tests.
type Expectation struct {
	FailToPass []string // fail before the gold patch, pass after it
	PassToPass []string // pass before and after
	FailToFail []string // fail before and after
}

// Resolution is SWE-bench's verdict.
type Resolution string

const (
	ResolvedFull    Resolution = "FULL"    // every FAIL_TO_PASS and every PASS_TO_PASS test passes
	ResolvedPartial Resolution = "PARTIAL" // some but not all FAIL_TO_PASS pass, every PASS_TO_PASS passes
	ResolvedNo      Resolution = "NO"
)

// TestDetail is one entry of passes, failures and skips.
type TestDetail struct {
	Name            string  `json:"name"`
	Details         string  `json:"details"`
	Kind            string  `json:"kind,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	Count           int     `json:"count,omitempty"` // set when one entry stands for several tests (pytest skip groups)
}

// Result is the spec's TestSuiteResult plus fields that say why: SWE-bench's resolution and
// which listed tests went wrong. The extra fields keep the schema valid (it allows them).
type Result struct {
	Tool                     string       `json:"tool"`
	IsSuccess                bool         `json:"is_success"`
	ExecutionDurationSeconds float64      `json:"execution_duration_seconds"`
	Total                    int          `json:"total"`
	Passed                   int          `json:"passed"`
	Failed                   int          `json:"failed"`
	Skipped                  int          `json:"skipped"`
	Passes                   []TestDetail `json:"passes"`
	Failures                 []TestDetail `json:"failures"`
	Skips                    []TestDetail `json:"skips"`
	Stdout                   string       `json:"stdout"`
	Stderr                   string       `json:"stderr"`

	Resolution       Resolution `json:"resolution"`
	FailToPassFailed []string   `json:"fail_to_pass_failed"` // FAIL_TO_PASS tests that did not pass (failed, skipped or missing)
	PassToPassFailed []string   `json:"pass_to_pass_failed"` // PASS_TO_PASS tests that failed or are missing
	FailToFailPassed []string   `json:"fail_to_fail_passed"` // FAIL_TO_FAIL tests that passed
	NotFound         []string   `json:"not_found"`           // listed tests the report does not mention (graded as failed)
	UnlistedPassed   []string   `json:"unlisted_passed"`     // passing tests in no list: the passed set then differs from FAIL_TO_PASS + PASS_TO_PASS
	UnlistedFailed   []string   `json:"unlisted_failed"`     // failing tests in no list
	// IgnoredChanges are the paths the agent changed that the oracle did not grade (protected:
	// the tests, the verifier's files, the sample's protected paths); set by the verifier.
	IgnoredChanges []string `json:"ignored_changes,omitempty"`
}

// Run is the raw outcome of one verifier run.
type Run struct {
	Stdout   string
	Stderr   string
	Duration time.Duration
}

// ToolTestSuite is the result's discriminator in the spec.
const ToolTestSuite = "test_suite"

// Limits that keep a result inside one read-model document (Firestore's limit is 1 MiB): the
// verifier's streams keep their tail, where the summaries are, and test details share a budget.
// A run with many thousands of failing tests can still outgrow Firestore's limit through the
// names alone; the SQLite read model has no such limit.
const (
	maxStream     = 64 << 10
	detailsBudget = 256 << 10
)

// Grade judges a report against a sample's expectation.
//
// is_success is Codeset's rule: the set of passed tests equals FAIL_TO_PASS + PASS_TO_PASS and
// the set of failed tests equals FAIL_TO_FAIL. A listed test that the report does not mention is
// graded as failed, as SWE-bench does ("not in the log" is a failure).
//
// The resolution is SWE-bench's: FULL when every FAIL_TO_PASS test passes and every PASS_TO_PASS
// test is kept, PARTIAL when only some FAIL_TO_PASS tests pass and every PASS_TO_PASS test is
// kept, NO otherwise. A skipped FAIL_TO_PASS test counts as failed, a skipped PASS_TO_PASS test
// as kept, and an empty list succeeds.
func Grade(rep Report, exp Expectation, run Run) Result {
	r := Result{
		Tool:                     ToolTestSuite,
		ExecutionDurationSeconds: run.Duration.Seconds(),
		Passes:                   []TestDetail{},
		Failures:                 []TestDetail{},
		Skips:                    []TestDetail{},
		Stdout:                   tail(run.Stdout, maxStream),
		Stderr:                   tail(run.Stderr, maxStream),
		FailToPassFailed:         []string{},
		PassToPassFailed:         []string{},
		FailToFailPassed:         []string{},
		NotFound:                 []string{},
		UnlistedPassed:           []string{},
		UnlistedFailed:           []string{},
	}
	outcome := map[string]Outcome{}
	budget := detailsBudget
	detail := func(t Test) TestDetail {
		d := t.Details
		if len(d) > budget {
			d = truncate(d, budget) // once the budget is spent, only the note that details were cut
		}
		budget -= min(len(d), budget)
		td := TestDetail{Name: t.Name, Details: d, Kind: t.Kind, DurationSeconds: t.Duration}
		if t.Count > 1 {
			td.Count = t.Count
		}
		return td
	}
	add := func(t Test) {
		outcome[t.Name] = t.Outcome
		switch t.Outcome {
		case Passed:
			r.Passed += t.Count
			r.Passes = append(r.Passes, detail(t))
		case Failed:
			r.Failed += t.Count
			r.Failures = append(r.Failures, detail(t))
		default:
			r.Skipped += t.Count
			r.Skips = append(r.Skips, detail(t))
		}
	}
	for _, t := range rep.Tests {
		add(t)
	}
	listed := map[string]bool{}
	for _, list := range []struct {
		name  string
		tests []string
	}{{"FAIL_TO_PASS", exp.FailToPass}, {"PASS_TO_PASS", exp.PassToPass}, {"FAIL_TO_FAIL", exp.FailToFail}} {
		for _, name := range list.tests {
			listed[name] = true
			if _, ok := outcome[name]; !ok {
				r.NotFound = append(r.NotFound, name)
				add(Test{Name: name, Outcome: Failed, Kind: KindMissing, Count: 1,
					Details: fmt.Sprintf("listed in %s but not found in the report", list.name)})
			}
		}
	}
	r.Total = r.Passed + r.Failed + r.Skipped

	wantPassed := setOf(exp.FailToPass, exp.PassToPass)
	wantFailed := setOf(exp.FailToFail)
	passed, failed := map[string]bool{}, map[string]bool{}
	for name, o := range outcome {
		switch o {
		case Passed:
			passed[name] = true
		case Failed:
			failed[name] = true
		}
	}
	r.IsSuccess = equal(passed, wantPassed) && equal(failed, wantFailed)

	f2pOK := 0
	for _, name := range unique(exp.FailToPass) {
		if outcome[name] == Passed {
			f2pOK++
		} else {
			r.FailToPassFailed = append(r.FailToPassFailed, name)
		}
	}
	p2pOK := 0
	for _, name := range unique(exp.PassToPass) {
		if o := outcome[name]; o == Passed || o == Skipped {
			p2pOK++
		} else {
			r.PassToPassFailed = append(r.PassToPassFailed, name)
		}
	}
	for _, name := range unique(exp.FailToFail) {
		if outcome[name] == Passed {
			r.FailToFailPassed = append(r.FailToFailPassed, name)
		}
	}
	for _, t := range rep.Tests {
		if listed[t.Name] {
			continue
		}
		switch t.Outcome {
		case Passed:
			r.UnlistedPassed = append(r.UnlistedPassed, t.Name)
		case Failed:
			r.UnlistedFailed = append(r.UnlistedFailed, t.Name)
		}
	}
	r.Resolution = resolution(rate(f2pOK, len(unique(exp.FailToPass))), rate(p2pOK, len(unique(exp.PassToPass))))
	return r
}

// rate is SWE-bench's success rate of a list; an empty list succeeds.
func rate(ok, total int) float64 {
	if total == 0 {
		return 1
	}
	return float64(ok) / float64(total)
}

func resolution(f2p, p2p float64) Resolution {
	switch {
	case f2p == 1 && p2p == 1:
		return ResolvedFull
	case f2p > 0 && f2p < 1 && p2p == 1:
		return ResolvedPartial
	default:
		return ResolvedNo
	}
}

func setOf(lists ...[]string) map[string]bool {
	s := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			s[n] = true
		}
	}
	return s
}

func unique(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := make([]string, 0, len(l))
	for _, n := range l {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func equal(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// tail keeps the last n bytes of s, where a test run's summary is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8Start(s[cut]) {
		cut++
	}
	return fmt.Sprintf("[... %d bytes truncated]\n", cut) + s[cut:]
}
