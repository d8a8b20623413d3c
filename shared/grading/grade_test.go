package grading

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func report(tests ...Test) Report {
	var b builder
	for _, t := range tests {
		b.add(t)
	}
	return b.report()
}

func pass(n string) Test { return Test{Name: n, Outcome: Passed} }
func fail(n string) Test { return Test{Name: n, Outcome: Failed, Kind: KindFailure, Details: "boom"} }
func skip(n string) Test { return Test{Name: n, Outcome: Skipped, Kind: KindSkip} }

func TestGrade(t *testing.T) {
	t.Parallel()
	exp := Expectation{FailToPass: []string{"f1", "f2"}, PassToPass: []string{"p1", "p2"}, FailToFail: []string{"x1"}}
	cases := []struct {
		name       string
		rep        Report
		exp        Expectation
		success    bool
		resolution Resolution
		f2pFailed  []string
		p2pFailed  []string
		f2fPassed  []string
		notFound   []string
		unlisted   [2][]string // passed, failed
		counts     [4]int      // total, passed, failed, skipped
	}{
		{name: "gold: exactly the listed outcomes",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2"), fail("x1")), exp: exp,
			success: true, resolution: ResolvedFull, counts: [4]int{5, 4, 1, 0}},
		{name: "untouched: FAIL_TO_PASS still fail",
			rep: report(fail("f1"), fail("f2"), pass("p1"), pass("p2"), fail("x1")), exp: exp,
			resolution: ResolvedNo, f2pFailed: []string{"f1", "f2"}, counts: [4]int{5, 2, 3, 0}},
		{name: "half the FAIL_TO_PASS: partial",
			rep: report(pass("f1"), fail("f2"), pass("p1"), pass("p2"), fail("x1")), exp: exp,
			resolution: ResolvedPartial, f2pFailed: []string{"f2"}, counts: [4]int{5, 3, 2, 0}},
		{name: "a PASS_TO_PASS test broken",
			rep: report(pass("f1"), pass("f2"), pass("p1"), fail("p2"), fail("x1")), exp: exp,
			resolution: ResolvedNo, p2pFailed: []string{"p2"}, counts: [4]int{5, 3, 2, 0}},
		{name: "partial with a PASS_TO_PASS broken is no",
			rep: report(pass("f1"), fail("f2"), pass("p1"), fail("p2"), fail("x1")), exp: exp,
			resolution: ResolvedNo, f2pFailed: []string{"f2"}, p2pFailed: []string{"p2"}, counts: [4]int{5, 2, 3, 0}},
		{name: "a skipped FAIL_TO_PASS test counts as failed",
			rep: report(pass("f1"), skip("f2"), pass("p1"), pass("p2"), fail("x1")), exp: exp,
			resolution: ResolvedPartial, f2pFailed: []string{"f2"}, counts: [4]int{5, 3, 1, 1}},
		{name: "a skipped PASS_TO_PASS test is kept by SWE-bench, but is not in Codeset's passed set",
			rep: report(pass("f1"), pass("f2"), pass("p1"), skip("p2"), fail("x1")), exp: exp,
			resolution: ResolvedFull, counts: [4]int{5, 3, 1, 1}},
		{name: "a listed test missing from the report is failed",
			rep: report(pass("f1"), pass("p1"), pass("p2"), fail("x1")), exp: exp,
			resolution: ResolvedPartial, f2pFailed: []string{"f2"}, notFound: []string{"f2"}, counts: [4]int{5, 3, 2, 0}},
		{name: "a missing PASS_TO_PASS test is not kept",
			rep: report(pass("f1"), pass("f2"), pass("p1"), fail("x1")), exp: exp,
			resolution: ResolvedNo, p2pFailed: []string{"p2"}, notFound: []string{"p2"}, counts: [4]int{5, 3, 2, 0}},
		{name: "a missing FAIL_TO_FAIL test is failed, as expected",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2")), exp: exp,
			success: true, resolution: ResolvedFull, notFound: []string{"x1"}, counts: [4]int{5, 4, 1, 0}},
		{name: "a FAIL_TO_FAIL test that passes breaks Codeset's rule only",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2"), pass("x1")), exp: exp,
			resolution: ResolvedFull, f2fPassed: []string{"x1"}, counts: [4]int{5, 5, 0, 0}},
		{name: "an unlisted passing test: the passed set differs",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2"), fail("x1"), pass("new")), exp: exp,
			resolution: ResolvedFull, unlisted: [2][]string{{"new"}, nil}, counts: [4]int{6, 5, 1, 0}},
		{name: "an unlisted failing test: the failed set differs",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2"), fail("x1"), fail("example.com/pkg")), exp: exp,
			resolution: ResolvedFull, unlisted: [2][]string{nil, {"example.com/pkg"}}, counts: [4]int{6, 4, 2, 0}},
		{name: "an unlisted skipped test changes nothing",
			rep: report(pass("f1"), pass("f2"), pass("p1"), pass("p2"), fail("x1"), skip("s")), exp: exp,
			success: true, resolution: ResolvedFull, counts: [4]int{6, 4, 1, 1}},
		{name: "empty FAIL_TO_PASS and FAIL_TO_FAIL lists",
			rep: report(pass("p1")), exp: Expectation{PassToPass: []string{"p1"}},
			success: true, resolution: ResolvedFull, counts: [4]int{1, 1, 0, 0}},
		{name: "names repeated in a list count once",
			rep: report(pass("f1"), pass("p1")), exp: Expectation{FailToPass: []string{"f1", "f1"}, PassToPass: []string{"p1", "p1"}},
			success: true, resolution: ResolvedFull, counts: [4]int{2, 2, 0, 0}},
		{name: "a skip group counts every test it stands for",
			rep: report(pass("f1"), Test{Name: "t.py:3", Outcome: Skipped, Kind: KindSkip, Count: 3, group: true}), exp: Expectation{FailToPass: []string{"f1"}},
			success: true, resolution: ResolvedFull, counts: [4]int{4, 1, 0, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := Grade(c.rep, c.exp, Run{Stdout: "out", Stderr: "err", Duration: 1500 * time.Millisecond})
			if r.IsSuccess != c.success || r.Resolution != c.resolution {
				t.Errorf("is_success %v resolution %s, want %v %s", r.IsSuccess, r.Resolution, c.success, c.resolution)
			}
			for _, l := range []struct {
				name      string
				got, want []string
			}{
				{"fail_to_pass_failed", r.FailToPassFailed, c.f2pFailed},
				{"pass_to_pass_failed", r.PassToPassFailed, c.p2pFailed},
				{"fail_to_fail_passed", r.FailToFailPassed, c.f2fPassed},
				{"not_found", r.NotFound, c.notFound},
				{"unlisted_passed", r.UnlistedPassed, c.unlisted[0]},
				{"unlisted_failed", r.UnlistedFailed, c.unlisted[1]},
			} {
				if l.got == nil {
					t.Errorf("%s is nil: it must marshal as []", l.name)
				}
				if !slices.Equal(l.got, l.want) && (len(l.got) != 0 || len(l.want) != 0) {
					t.Errorf("%s = %v, want %v", l.name, l.got, l.want)
				}
			}
			if got := [4]int{r.Total, r.Passed, r.Failed, r.Skipped}; got != c.counts {
				t.Errorf("total/passed/failed/skipped = %v, want %v", got, c.counts)
			}
			if len(r.Passes)+len(r.Failures)+len(r.Skips) == 0 {
				t.Error("no test listed")
			}
			if r.ExecutionDurationSeconds != 1.5 || r.Stdout != "out" || r.Stderr != "err" || r.Tool != "test_suite" {
				t.Errorf("run fields: %v %q %q %q", r.ExecutionDurationSeconds, r.Stdout, r.Stderr, r.Tool)
			}
		})
	}
}

// TestGradeRealRun grades a real go test -json run the way a sample would list it: the build
// failure of a package keeps the run from passing even when every listed test is as expected.
func TestGradeRealRun(t *testing.T) {
	t.Parallel()
	rep, err := Parse(FormatGoTestJSON, Sources{Stdout: fixture(t, "gotest/packages.json")})
	if err != nil {
		t.Fatal(err)
	}
	exp := Expectation{
		FailToPass: []string{"TestAdd/wrong_on_purpose"},
		PassToPass: []string{"TestAdd/zero", "TestAdd/positive", "TestPasses", "TestBefore"},
		FailToFail: []string{"TestPanics", "TestPanics/inner", "TestAdd"},
	}
	r := Grade(rep, exp, Run{})
	if r.IsSuccess || r.Resolution != ResolvedNo || !slices.Equal(r.FailToPassFailed, []string{"TestAdd/wrong_on_purpose"}) {
		t.Fatalf("is_success %v resolution %s f2p failed %v", r.IsSuccess, r.Resolution, r.FailToPassFailed)
	}
	if !slices.Equal(r.UnlistedFailed, []string{"example.com/demo/broken"}) {
		t.Fatalf("unlisted failed %v, want the broken package", r.UnlistedFailed)
	}
	var failures []string
	for _, f := range r.Failures {
		failures = append(failures, f.Name)
	}
	if !slices.Contains(failures, "TestAdd/wrong_on_purpose") {
		t.Fatalf("FAIL_TO_PASS test not among failures %v", failures)
	}
}

// TestResultMatchesSpec marshals a result and checks it against the spec's TestSuiteResult:
// every required field present with the right JSON type, lists as arrays of objects with a name.
func TestResultMatchesSpec(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "functions", "openapi.json"))
	if err != nil {
		t.Fatalf("read the spec: %v", err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string                  `json:"required"`
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	schema := spec.Components.Schemas["TestSuiteResult"]
	if len(schema.Required) == 0 {
		t.Fatal("no TestSuiteResult in the spec")
	}
	r := Grade(report(pass("a"), fail("b"), skip("c")), Expectation{PassToPass: []string{"a"}}, Run{Duration: time.Second})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range schema.Required {
		if _, ok := doc[f]; !ok {
			t.Errorf("required field %s missing", f)
		}
	}
	kinds := map[string]reflect.Kind{"string": reflect.String, "boolean": reflect.Bool, "number": reflect.Float64, "integer": reflect.Float64, "array": reflect.Slice}
	for name, prop := range schema.Properties {
		v, ok := doc[name]
		if !ok {
			t.Errorf("field %s missing", name)
			continue
		}
		if want, ok := kinds[prop["type"].(string)]; ok && reflect.TypeOf(v).Kind() != want {
			t.Errorf("field %s is %T, want %s", name, v, prop["type"])
		}
		if c, ok := prop["const"]; ok && v != c {
			t.Errorf("field %s = %v, want %v", name, v, c)
		}
	}
	for _, list := range []string{"passes", "failures", "skips"} {
		items := doc[list].([]any)
		if len(items) != 1 {
			t.Fatalf("%s has %d items", list, len(items))
		}
		item := items[0].(map[string]any)
		if item["name"] == "" || item["details"] == nil {
			t.Errorf("%s item %v lacks name or details", list, item)
		}
	}
}

// TestGradeKeepsResultSmall: a run with thousands of failing tests and huge output still fits a
// read-model document.
func TestGradeKeepsResultSmall(t *testing.T) {
	t.Parallel()
	var tests []Test
	for i := range 3000 {
		tests = append(tests, Test{Name: "t" + string(rune('a'+i%26)) + time.Duration(i).String(), Outcome: Failed, Kind: KindFailure, Details: strings.Repeat("x", 4000)})
	}
	big := strings.Repeat("y", 5<<20)
	r := Grade(report(tests...), Expectation{}, Run{Stdout: big, Stderr: big})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result of %d bytes for 3000 failing tests and 5 MiB streams", len(b))
	if len(b) > 1<<20 {
		t.Fatalf("result of %d bytes", len(b))
	}
	if r.Failed != 3000 || len(r.Failures) != 3000 {
		t.Fatalf("failed %d, %d entries", r.Failed, len(r.Failures))
	}
}
