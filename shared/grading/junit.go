package grading

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// junitCase is a <testcase> as pytest, unittest-xml-reporting, Maven Surefire and jest-junit
// write it. Surefire's rerun elements matter: a <flakyFailure> without a <failure> is a test that
// failed and then passed on a rerun, and Surefire counts it as passed.
type junitCase struct {
	Name      string         `xml:"name,attr"`
	ClassName string         `xml:"classname,attr"`
	Class     string         `xml:"class,attr"` // a few older runners write class= instead
	Time      string         `xml:"time,attr"`
	Failures  []junitProblem `xml:"failure"`
	Errors    []junitProblem `xml:"error"`
	Skipped   []junitProblem `xml:"skipped"`
	Flaky     []junitProblem `xml:"flakyFailure"`
	FlakyErr  []junitProblem `xml:"flakyError"`
	SystemOut []string       `xml:"system-out"`
	SystemErr []string       `xml:"system-err"`
}

type junitProblem struct {
	Message    string `xml:"message,attr"`
	Type       string `xml:"type,attr"`
	Text       string `xml:",chardata"`
	StackTrace string `xml:"stackTrace"` // Surefire's rerun elements nest their trace
}

// parseJUnit reads a JUnit XML document: a <testsuites> or a bare <testsuite> root, suites nested
// to any depth, each <testcase> named classname::name (name alone without a class name).
func parseJUnit(source, text string, b *builder) error {
	dec := xml.NewDecoder(strings.NewReader(text))
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return errorf(CodeReportMalformed, "%s is not well-formed JUnit XML: %v", source, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root == "" {
			root = start.Name.Local
			if root != "testsuites" && root != "testsuite" {
				return errorf(CodeReportMalformed, "%s is not a JUnit report: its root element is <%s>, not <testsuites> or <testsuite>", source, root)
			}
			continue
		}
		if start.Name.Local != "testcase" {
			continue // suites, properties, system-out of a suite: descend into them
		}
		var c junitCase
		if err := dec.DecodeElement(&c, &start); err != nil {
			return errorf(CodeReportMalformed, "%s has a malformed <testcase>: %v", source, err)
		}
		t, err := c.test(source)
		if err != nil {
			return err
		}
		b.add(t)
	}
	if root == "" {
		return errorf(CodeReportMalformed, "%s holds no XML element", source)
	}
	return nil
}

func (c junitCase) test(source string) (Test, error) {
	name := strings.TrimSpace(c.Name)
	if name == "" {
		return Test{}, errorf(CodeReportMalformed, "%s has a <testcase> without a name", source)
	}
	class := strings.TrimSpace(c.ClassName)
	if class == "" {
		class = strings.TrimSpace(c.Class)
	}
	// jest-junit's default writes the full title as both class name and name: that is no class.
	if class != "" && class != name {
		name = class + "::" + name
	}
	t := Test{Name: name, Duration: seconds(c.Time)}
	switch {
	case len(c.Errors) > 0 || len(c.Failures) > 0:
		t.Outcome, t.Kind = Failed, KindFailure
		if len(c.Errors) > 0 && len(c.Failures) == 0 {
			t.Kind = KindError
		}
		t.Details = problems(append(append([]junitProblem{}, c.Failures...), c.Errors...))
		if out := strings.TrimSpace(strings.Join(c.SystemOut, "\n")); out != "" {
			t.Details += "\n--- stdout ---\n" + out
		}
		if errOut := strings.TrimSpace(strings.Join(c.SystemErr, "\n")); errOut != "" {
			t.Details += "\n--- stderr ---\n" + errOut
		}
	case len(c.Skipped) > 0 && isXFail(c.Skipped[0].Type):
		// pytest writes an expected failure as <skipped type="pytest.xfail">, unittest-xml-reporting
		// as type="XFAIL"; SWE-bench counts XFAIL as passed, and so does the pytest -rA parser.
		t.Outcome, t.Kind, t.Details = Passed, KindXFail, problems(c.Skipped)
	case len(c.Skipped) > 0:
		t.Outcome, t.Kind, t.Details = Skipped, KindSkip, problems(c.Skipped)
	default:
		t.Outcome = Passed
		if len(c.Flaky) > 0 || len(c.FlakyErr) > 0 {
			t.Details = "flaky: passed on a rerun after\n" + problems(append(append([]junitProblem{}, c.Flaky...), c.FlakyErr...))
		}
	}
	return t, nil
}

func isXFail(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == "pytest.xfail" || typ == "xfail"
}

// problems renders failure / error / skipped elements: the message, then the text when it says
// more (a traceback usually repeats the message on its last line).
func problems(ps []junitProblem) string {
	var parts []string
	for _, p := range ps {
		msg, txt := strings.TrimSpace(p.Message), strings.TrimSpace(p.Text+p.StackTrace)
		switch {
		case msg == "" && txt == "":
			if p.Type != "" {
				parts = append(parts, p.Type)
			}
		case msg == "" || txt == msg:
			parts = append(parts, txt)
		case txt == "":
			parts = append(parts, msg)
		default:
			parts = append(parts, msg+"\n"+txt)
		}
	}
	return strings.Join(parts, "\n\n")
}

// seconds reads a time attribute; Surefire once wrote thousands separators ("1,234.5").
func seconds(s string) float64 {
	f, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 64)
	if err != nil || f < 0 {
		return 0
	}
	return f
}
