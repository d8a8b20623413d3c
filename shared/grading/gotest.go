package grading

import (
	"bufio"
	"encoding/json"
	"strings"
)

// goEvent is one line of `go test -json` (cmd/test2json), including the build events Go 1.24
// added (build-output, build-fail, and FailedBuild on the package's fail).
type goEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	ImportPath  string
	FailedBuild string
}

type goTest struct {
	pkg, name string
	action    string // the terminal action: pass, fail, skip; empty while the test never ended
	output    strings.Builder
	elapsed   float64
}

type goPackage struct {
	name        string
	action      string
	failedBuild string
	output      strings.Builder
}

// parseGoTestJSON reads `go test -json` output. Tests are named as test2json names them (TestX,
// TestX/sub). A test that started and never ended (the binary panicked, timed out or was killed)
// is failed. A package that failed with no failing test of its own (a build failure, TestMain,
// a panic in init) is reported as one failed entry named by its import path, so that a run
// where nothing could be tested never passes.
func parseGoTestJSON(source, text string, b *builder) error {
	var (
		tests    = map[[2]string]*goTest{}
		order    []*goTest
		packages = map[string]*goPackage{}
		porder   []*goPackage
		builds   = map[string]*strings.Builder{} // build output by import path
		valid    int
	)
	pkg := func(name string) *goPackage {
		p, ok := packages[name]
		if !ok {
			p = &goPackage{name: name}
			packages[name] = p
			porder = append(porder, p)
		}
		return p
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue // a verifier may print around go test's stream (downloads, its own echo)
		}
		var e goEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Action == "" {
			continue // a line cut short by a killed run; what came before still counts
		}
		valid++
		switch e.Action {
		case "build-output":
			w, ok := builds[e.ImportPath]
			if !ok {
				w = &strings.Builder{}
				builds[e.ImportPath] = w
			}
			w.WriteString(e.Output)
			continue
		case "build-fail":
			continue
		}
		if e.Package == "" {
			continue
		}
		p := pkg(e.Package)
		if e.Test == "" {
			switch e.Action {
			case "output":
				p.output.WriteString(e.Output)
			case "pass", "fail", "skip":
				p.action, p.failedBuild = e.Action, e.FailedBuild
			}
			continue
		}
		key := [2]string{e.Package, e.Test}
		t, ok := tests[key]
		if !ok {
			t = &goTest{pkg: e.Package, name: e.Test}
			tests[key] = t
			order = append(order, t)
		}
		switch e.Action {
		case "output":
			t.output.WriteString(e.Output)
		case "pass", "fail", "skip":
			t.action, t.elapsed = e.Action, e.Elapsed
		}
	}
	if err := sc.Err(); err != nil {
		return errorf(CodeReportMalformed, "%s cannot be read as go test -json: %v", source, err)
	}
	if valid == 0 {
		return errorf(CodeReportMalformed, "%s holds no go test -json event", source)
	}

	failedIn := map[string]bool{} // packages with a failed or unfinished test
	for _, t := range order {
		out := t.output.String()
		entry := Test{Name: t.name, Duration: t.elapsed}
		switch t.action {
		case "pass":
			entry.Outcome = Passed
		case "skip":
			entry.Outcome, entry.Kind, entry.Details = Skipped, KindSkip, strings.TrimSpace(withoutFraming(out))
		case "fail":
			entry.Outcome, entry.Kind, entry.Details = Failed, KindFailure, strings.TrimSpace(out)
			failedIn[t.pkg] = true
		default:
			entry.Outcome, entry.Kind = Failed, KindUnfinished
			entry.Details = strings.TrimSpace(out + "\n" + "the test started and never reported an end: the test binary crashed, timed out or was killed\n" + packages[t.pkg].output.String())
			failedIn[t.pkg] = true
		}
		b.add(entry)
	}
	for _, p := range porder {
		if failedIn[p.name] {
			continue // its failing tests already say what went wrong
		}
		switch {
		case p.action == "fail" && (p.failedBuild != "" || strings.Contains(p.output.String(), "[build failed]")):
			details := p.output.String()
			if w, ok := builds[p.failedBuild]; ok {
				details = w.String() + details
			}
			b.add(Test{Name: p.name, Outcome: Failed, Kind: KindBuild, Details: strings.TrimSpace(details)})
		case p.action == "fail":
			b.add(Test{Name: p.name, Outcome: Failed, Kind: KindPackage, Details: strings.TrimSpace(p.output.String())})
		case p.action == "":
			b.add(Test{Name: p.name, Outcome: Failed, Kind: KindUnfinished, Details: strings.TrimSpace(p.output.String() + "\nthe package started and never reported an end")})
		}
	}
	return nil
}

// withoutFraming drops test2json's "=== RUN" style lines, leaving what the test said.
func withoutFraming(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") || strings.HasPrefix(t, "--- PASS") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
