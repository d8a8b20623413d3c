package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codeset/codeset/shared/dataset"
)

// TestDemoTasksValidate checks every demo task the way a dataset author would: the work tree
// lands on base_commit; with test_patch applied, the failed tests are exactly FAIL_TO_PASS plus
// FAIL_TO_FAIL and the passed ones exactly PASS_TO_PASS; with the gold patch too, the passed
// tests are FAIL_TO_PASS plus PASS_TO_PASS and the failed ones FAIL_TO_FAIL.
func TestDemoTasksValidate(t *testing.T) {
	rows, err := Rows()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 6 {
		t.Fatalf("%d demo tasks, want at least 6", len(rows))
	}
	langs := map[string]int{}
	for _, r := range rows {
		langs[r.Content.Language+"/"+r.Content.Environment.ReportFormat]++
	}
	if langs["go/go-test-json"] < 3 || langs["python/junit"] < 2 || langs["shell/junit"] < 1 {
		t.Errorf("demo mix %v: want >= 3 Go (go-test-json), >= 2 Python (junit), >= 1 shell (junit)", langs)
	}
	for _, row := range rows {
		c := row.Content
		t.Run(c.SampleID, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			repo := filepath.Join(t.TempDir(), dataset.DefaultWorkDir)
			commit, err := dataset.BuildRepo(ctx, row.SourceFiles, repo)
			if err != nil {
				t.Fatal(err)
			}
			if commit != c.BaseCommit {
				t.Fatalf("work tree is at %s, task.json says base_commit %s", commit, c.BaseCommit)
			}
			apply(t, repo, c.TestPatch)
			passed, failed := verify(t, ctx, repo, c.Environment.VerifierCommand, c.Environment.ReportFormat, c.Environment.ReportPaths)
			same(t, "base+test_patch passed", passed, c.PassToPass)
			same(t, "base+test_patch failed", failed, append(slices.Clone(c.FailToPass), c.FailToFail...))
			apply(t, repo, c.Patch)
			passed, failed = verify(t, ctx, repo, c.Environment.VerifierCommand, c.Environment.ReportFormat, c.Environment.ReportPaths)
			same(t, "gold passed", passed, append(slices.Clone(c.FailToPass), c.PassToPass...))
			same(t, "gold failed", failed, c.FailToFail)
		})
	}
}

func apply(t *testing.T, repo, patch string) {
	t.Helper()
	cmd := exec.Command("git", "apply", "-")
	cmd.Dir, cmd.Stdin = repo, strings.NewReader(patch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v: %s", err, out)
	}
}

// verify runs the verifier and returns the tests that passed and failed, by name.
func verify(t *testing.T, ctx context.Context, repo, command, format string, reports []string) (passed, failed []string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Dir = repo
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("verifier timed out: %v", err)
	}
	switch format {
	case "go-test-json":
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			var e struct{ Action, Test string }
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.Test == "" {
				continue
			}
			switch e.Action {
			case "pass":
				passed = append(passed, e.Test)
			case "fail":
				failed = append(failed, e.Test)
			}
		}
	case "junit":
		for _, p := range reports {
			raw, rerr := os.ReadFile(filepath.Join(repo, p))
			if rerr != nil {
				t.Fatalf("report %s: %v (verifier: %v, stdout %s)", p, rerr, err, out)
			}
			var doc struct {
				Cases []struct {
					Class   string    `xml:"classname,attr"`
					Name    string    `xml:"name,attr"`
					Failure *struct{} `xml:"failure"`
					Error   *struct{} `xml:"error"`
					Skipped *struct{} `xml:"skipped"`
				} `xml:"testsuite>testcase"`
			}
			if err := xml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("report %s: %v", p, err)
			}
			for _, c := range doc.Cases {
				name := c.Class + "::" + c.Name
				switch {
				case c.Failure != nil || c.Error != nil:
					failed = append(failed, name)
				case c.Skipped == nil:
					passed = append(passed, name)
				}
			}
		}
	default:
		t.Fatalf("unknown report format %q", format)
	}
	if len(passed)+len(failed) == 0 {
		t.Fatalf("the verifier reported no tests (exit %v): %s", err, out)
	}
	return passed, failed
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: got %q, want %q", what, g, w)
	}
}
