package demo_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/agentjob"
	"github.com/codeset/codeset/shared/agentjob/demo"
)

// repo writes a small mixed Go and Python repository with the manifests the agent reads.
func repo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                    "module example.com/widget\n\ngo 1.22\n",
		"Makefile":                  "GO ?= go\n.PHONY: build test\nbuild:\n\t$(GO) build ./...\ntest: build\n\t$(GO) test ./...\nlint:\n\tgolangci-lint run\n%.o: %.c\n\tcc $<\n",
		"cmd/widget/main.go":        "package main\n\nfunc main() {}\n",
		"widget.go":                 "package widget\n\n// Widget does things.\nfunc Widget() int { return 1 }\n",
		"widget_test.go":            "package widget\n\nimport \"testing\"\n\nfunc TestWidget(t *testing.T) {}\n",
		"pyproject.toml":            "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"widget-tools\"\n\n[project.scripts]\nwidget-cli = \"widget_tools.cli:main\"\n\n[tool.pytest.ini_options]\ntestpaths = [\n  \"tests\",\n]\n",
		"widget_tools/__init__.py":  "",
		"widget_tools/cli.py":       "def main():\n    print('hi')\n",
		"tests/test_cli.py":         "def test_main():\n    assert True\n",
		"tests/conftest.py":         "",
		"package.json":              `{"name": "widget-web", "scripts": {"test": "jest", "build": "tsc -p ."}, "bin": {"widget-web": "bin/cli.js"}, "devDependencies": {"jest": "^29"}}`,
		"bin/cli.js":                "#!/usr/bin/env node\nconsole.log('hi')\n",
		"docs/index.md":             "# Widget\n",
		".github/workflows/ci.yml":  "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: go test -race ./...\n      - name: python\n        run: |\n          pip install -e .\n          pytest -q\n",
		"node_modules/dep/index.js": strings.Repeat("x", 100000), // vendored: not the project's
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink out of the tree is never followed.
	os.Symlink("/etc", filepath.Join(root, "etc-link"))
	return root
}

func TestKnowledgeBase(t *testing.T) {
	root := repo(t)
	k, err := demo.Scan(root, "acme/widget")
	if err != nil {
		t.Fatal(err)
	}
	files := demo.Files(k)

	// Deterministic: a second scan writes the same bytes.
	k2, err := demo.Scan(root, "acme/widget")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, demo.Files(k2)) {
		t.Fatal("two scans of the same tree wrote different knowledge bases")
	}

	want := map[string]string{"claude_code": "CLAUDE.md", "codex": "AGENTS.md", "copilot": ".github/copilot-instructions.md",
		"cursor": ".cursor/rules/codeset.mdc", "gemini_cli": "GEMINI.md"}
	got := map[string]string{}
	for _, f := range files {
		got[f.AgentID] = f.Path
		if agentjob.InstructionAgent(f.Path) != f.AgentID {
			t.Errorf("%s is not where %s reads instructions", f.Path, f.AgentID)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("files per agent: %v, want %v", got, want)
	}
	body := files[0].Content
	for _, s := range []string{
		"`make build`", "`make test`", "`make lint`", // Makefile targets, no pattern rule
		"`go test ./...`", "Go module `example.com/widget` (go 1.22)", // go.mod
		"`go test -race ./...`", "`pip install -e .`", "`pytest -q`", // the CI workflow, block run included
		"`npm test`", "`npm run build`", // package.json scripts
		"console script `widget-cli`: `widget_tools.cli:main`", // pyproject scripts
		"go main package `widget`: `./cmd/widget`", "npm bin `widget-web`: `bin/cli.js`", "bin/ `cli.js`",
		"`tests/`: tests", "`docs/`: documentation", "`cmd/`: command entry points",
		"| Go |", "| Python |", "| JavaScript |",
		"Frameworks: go test, jest, pytest", "`*_test.go` (1)", "`test_*.py` (1)",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("knowledge base lacks %q:\n%s", s, body)
		}
	}
	for _, s := range []string{"node_modules", "etc-link/", "%.o", "make GO"} {
		if strings.Contains(body, s) {
			t.Errorf("knowledge base mentions %q, which it should have skipped", s)
		}
	}
	var cursor string
	for _, f := range files {
		if f.AgentID == "cursor" {
			cursor = f.Content
		}
	}
	if !strings.HasPrefix(cursor, "---\ndescription: \"Knowledge base of acme/widget") || !strings.Contains(cursor, "\nalwaysApply: true\n---\n") {
		t.Errorf("the cursor rule lacks its front matter:\n%s", cursor[:min(len(cursor), 300)])
	}
	// Shares add up and follow the bytes: Go has the most bytes here, node_modules counts for nothing.
	var sum float64
	for _, l := range k.Languages {
		sum += l.Share
	}
	if sum < 99.5 || sum > 100.5 || k.Languages[0].Name != "Go" {
		t.Errorf("language shares %+v", k.Languages)
	}
}

func TestNotADirectory(t *testing.T) {
	if _, err := demo.Scan(filepath.Join(t.TempDir(), "missing"), "a/b"); err == nil {
		t.Fatal("a missing tree was scanned")
	}
}
