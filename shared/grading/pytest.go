package grading

import (
	"regexp"
	"strconv"
	"strings"
)

// ansi matches terminal colour codes (pytest --color=yes, or a verifier that forces a tty).
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// skipGroup is the location form of a SKIPPED line: "[N] path:line: reason".
var skipGroup = regexp.MustCompile(`^\[(\d+)\]\s+(\S+?:\d+):?\s*(.*)$`)

var skipCount = regexp.MustCompile(`^\[\d+\]\s*`)

// pytestStatuses are the words that open a short-summary line, with what they mean. XFAIL counts
// as passed and a non-strict XPASS as passed, as SWE-bench's log parser and grading do (a strict
// XPASS is printed as FAILED by pytest itself).
var pytestStatuses = map[string]struct {
	outcome Outcome
	kind    string
}{
	"PASSED":  {Passed, ""},
	"FAILED":  {Failed, KindFailure},
	"ERROR":   {Failed, KindError},
	"SKIPPED": {Skipped, KindSkip},
	"XFAIL":   {Passed, KindXFail},
	"XPASS":   {Passed, KindXPass},
}

// parsePytestRA reads the "short test summary info" of `pytest -rA`: one line per test,
// "STATUS node_id[ - message]", tests named by their node id (path::Class::test[param]).
// Skips are grouped by location ("SKIPPED [2] path:line: reason") and named by it. When the
// output has no summary header (a verifier that kept only the summary lines), every line is read.
func parsePytestRA(source, text string, b *builder) error {
	text = ansi.ReplaceAllString(text, "")
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	start, found := 0, false
	for i, l := range lines {
		if strings.HasPrefix(l, "=") && strings.Contains(l, " short test summary info ") {
			start, found = i+1, true // the last one: a verifier may run pytest more than once
		}
	}
	n := 0
	for _, raw := range lines[start:] {
		line := strings.TrimRight(raw, " \t")
		if found && strings.HasPrefix(line, "=") {
			break // the closing "=== 3 failed, 3 passed in 0.13s ===" line
		}
		word, rest, ok := strings.Cut(line, " ")
		status, known := pytestStatuses[word]
		if !ok || !known {
			continue
		}
		rest = strings.TrimSpace(rest)
		if word == "SKIPPED" {
			if m := skipGroup.FindStringSubmatch(rest); m != nil {
				count, _ := strconv.Atoi(m[1])
				b.add(Test{Name: m[2], Outcome: Skipped, Kind: KindSkip, Details: m[3], Count: max(count, 1), group: true})
				n++
				continue
			}
			rest = strings.TrimSpace(skipCount.ReplaceAllString(rest, "")) // a skip named by its node id
		}
		id, message := nodeID(rest)
		if id == "" {
			continue
		}
		message = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(message), "- "))
		b.add(Test{Name: id, Outcome: status.outcome, Kind: status.kind, Details: message})
		n++
	}
	if n == 0 {
		if strings.Contains(text, "no tests ran") || strings.Contains(text, "collected 0 items") {
			return errorf(CodeReportEmpty, "%s: pytest ran no test", source)
		}
		if !found && !strings.Contains(text, "test session starts") {
			return errorf(CodeReportMalformed, "%s is not pytest -rA output: no short test summary and no result line", source)
		}
		return errorf(CodeReportMalformed, "%s has pytest output but no result line (was -rA given?)", source)
	}
	return nil
}

// nodeID splits "path::test[a b] - message" into the node id and the rest. Parametrize ids may
// hold spaces, so a space ends the id only outside square brackets.
func nodeID(s string) (id, rest string) {
	depth := 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ' ', '\t':
			if depth == 0 {
				return s[:i], s[i:]
			}
		}
	}
	return s, ""
}
