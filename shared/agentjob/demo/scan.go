// Package demo is the built-in agent: it reads a repository's work tree and writes a knowledge
// base for coding agents, deterministically and offline (no model, no network), so that
// `make run` takes an agent job from creation to a result on any machine.
//
// What it finds comes only from the repository's own files: languages by extension and bytes,
// the top directories and what they hold, build and test commands (Makefile targets, go.mod,
// pyproject.toml, setup.cfg, package.json scripts, CI workflows), entry points (Go main
// packages, console scripts, bin/, package.json bin), and the test layout. It never runs
// anything of the repository and never follows a symlink, so an adversarial repository can at
// worst make its own knowledge base wrong.
package demo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Bounds on the walk: a huge repository gets a knowledge base of its first files rather than a
// job that never ends.
const (
	maxFiles     = 200_000
	maxReadBytes = 256 << 10 // of each manifest, Makefile or workflow read
)

// skipDirs are never walked: vendored or generated trees that say nothing of the project.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, ".venv": true, "venv": true,
	"__pycache__": true, ".tox": true, ".mypy_cache": true, ".pytest_cache": true, "dist": true, "target": true,
	".idea": true, ".vscode": true, ".next": true, "build": true}

// Language is one language of the repository and its share of the source bytes.
type Language struct {
	Name  string
	Bytes int64
	Files int
	Share float64 // percent of the bytes of recognised source files
}

// Dir is one top-level directory and what it holds.
type Dir struct {
	Name     string
	Files    int
	Holds    string   // what the name and contents suggest: "tests", "documentation", ...
	Language string   // its main language, if any
	Samples  []string // a few of its entries, for orientation
}

// Command is a build, test or run command found in a file of the repository.
type Command struct {
	Kind    string // "build", "test", "lint", "run", "other"
	Command string
	Source  string // the file it was found in
}

// EntryPoint is a way into the program.
type EntryPoint struct {
	Kind   string // "go main package", "console script", "bin/", "npm bin", "python __main__"
	Name   string
	Target string
}

// Tests is the test layout.
type Tests struct {
	Dirs       []string       // directories that hold only or mostly tests
	Patterns   map[string]int // file pattern -> number of files
	Frameworks []string
}

// Knowledge is what the demo agent learned about a repository.
type Knowledge struct {
	Repo        string
	Files       int
	Truncated   bool // the walk stopped at maxFiles
	Languages   []Language
	Layout      []Dir
	TopFiles    []string
	Commands    []Command
	EntryPoints []EntryPoint
	Tests       Tests
	GoModule    string
	GoVersion   string
	PythonName  string
	NodeName    string
	Conventions []string
}

// extLanguage maps a file extension to its language.
var extLanguage = map[string]string{
	".go": "Go", ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript",
	".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript", ".rs": "Rust", ".java": "Java", ".kt": "Kotlin",
	".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hpp": "C++", ".hh": "C++", ".cs": "C#",
	".rb": "Ruby", ".php": "PHP", ".swift": "Swift", ".scala": "Scala", ".sh": "Shell", ".bash": "Shell",
	".pyx": "Cython", ".pxd": "Cython", ".r": "R", ".jl": "Julia", ".lua": "Lua", ".pl": "Perl", ".m": "Objective-C",
	".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang", ".hs": "Haskell", ".ml": "OCaml", ".clj": "Clojure",
	".dart": "Dart", ".zig": "Zig", ".vue": "Vue", ".svelte": "Svelte", ".css": "CSS", ".scss": "CSS", ".html": "HTML",
	".sql": "SQL", ".proto": "Protocol Buffers", ".tf": "HCL", ".f90": "Fortran", ".f": "Fortran",
}

// scanner accumulates what the walk sees.
type scanner struct {
	root      string
	k         Knowledge
	langs     map[string]*Language
	dirs      map[string]*dirStats
	mainPkgs  map[string]bool
	testDirs  map[string]int // dir -> test files in it
	dirFiles  map[string]int // dir -> files in it
	patterns  map[string]int
	manifests []string // relative paths of files to read for commands, in walk order
	pyMains   []string
	conftest  bool
}

type dirStats struct {
	files   int
	langs   map[string]int64
	entries []string
}

// Scan reads the work tree at root. repo names it in the knowledge base ("owner/name").
func Scan(root, repo string) (Knowledge, error) {
	s := &scanner{root: root, langs: map[string]*Language{}, dirs: map[string]*dirStats{}, mainPkgs: map[string]bool{},
		testDirs: map[string]int{}, dirFiles: map[string]int{}, patterns: map[string]int{}}
	s.k.Repo = repo
	if st, err := os.Lstat(root); err != nil || !st.IsDir() {
		return Knowledge{}, fmt.Errorf("demo agent: %s is not a directory", root)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // an unreadable corner of the tree is left out, not fatal
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			if !strings.Contains(rel, "/") {
				s.dir(rel)
			}
			return nil
		}
		if !d.Type().IsRegular() || d.Name() == ".git" {
			return nil // symlinks, devices: never followed; a worktree's .git file is git's
		}
		if s.k.Files >= maxFiles {
			s.k.Truncated = true
			return filepath.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		s.file(rel, info.Size())
		return nil
	})
	if err != nil {
		return Knowledge{}, fmt.Errorf("demo agent: walk %s: %w", root, err)
	}
	s.finish()
	return s.k, nil
}

func (s *scanner) dir(name string) *dirStats {
	if s.dirs[name] == nil {
		s.dirs[name] = &dirStats{langs: map[string]int64{}}
	}
	return s.dirs[name]
}

func (s *scanner) file(rel string, size int64) {
	s.k.Files++
	base := path.Base(rel)
	dir := path.Dir(rel)
	s.dirFiles[dir]++
	ext := strings.ToLower(path.Ext(base))
	lang := extLanguage[ext]
	if lang != "" {
		l := s.langs[lang]
		if l == nil {
			l = &Language{Name: lang}
			s.langs[lang] = l
		}
		l.Bytes += size
		l.Files++
	}
	top, _, nested := strings.Cut(rel, "/")
	if nested {
		ds := s.dir(top)
		ds.files++
		if lang != "" {
			ds.langs[lang] += size
		}
		if second, _, _ := strings.Cut(strings.TrimPrefix(rel, top+"/"), "/"); len(ds.entries) < 64 && !contains(ds.entries, second) {
			ds.entries = append(ds.entries, second)
		}
	} else {
		s.k.TopFiles = append(s.k.TopFiles, rel)
	}
	if pat := testPattern(base); pat != "" {
		s.patterns[pat]++
		s.testDirs[dir]++
	} else if testRoot(dir) != "" && lang != "" {
		s.testDirs[dir]++
	}
	if base == "conftest.py" {
		s.conftest = true
	}
	switch {
	case base == "Makefile" || base == "makefile" || base == "GNUmakefile":
		if dir == "." {
			s.manifests = append(s.manifests, rel)
		}
	case base == "go.mod" || base == "pyproject.toml" || base == "setup.cfg" || base == "package.json":
		if dir == "." {
			s.manifests = append(s.manifests, rel)
		}
	case strings.HasPrefix(rel, ".github/workflows/") && (ext == ".yml" || ext == ".yaml"):
		s.manifests = append(s.manifests, rel)
	case ext == ".go" && !strings.HasSuffix(base, "_test.go") && size <= maxReadBytes:
		if s.goMain(rel) {
			s.mainPkgs[dir] = true
		}
	case base == "__main__.py":
		s.pyMains = append(s.pyMains, rel)
	}
	if top == "bin" && nested && !strings.Contains(strings.TrimPrefix(rel, "bin/"), "/") {
		s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "bin/", Name: base, Target: rel})
	}
}

// goMain reports whether the Go file declares package main.
func (s *scanner) goMain(rel string) bool {
	b, err := s.read(rel)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxReadBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "package ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main"
		}
	}
	return false
}

// read returns at most maxReadBytes of the regular file rel, never through a symlink.
func (s *scanner) read(rel string) ([]byte, error) {
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxReadBytes))
}

var (
	jsTest = regexp.MustCompile(`\.test\.[cm]?[jt]sx?$`)
	jsSpec = regexp.MustCompile(`\.spec\.[cm]?[jt]sx?$`)
)

// testPattern is the test-file naming convention base follows, if any.
func testPattern(base string) string {
	switch {
	case strings.HasSuffix(base, "_test.go"):
		return "*_test.go"
	case strings.HasPrefix(base, "test_") && strings.HasSuffix(base, ".py"):
		return "test_*.py"
	case strings.HasSuffix(base, "_test.py"):
		return "*_test.py"
	case jsTest.MatchString(base):
		return "*.test.{js,ts}"
	case jsSpec.MatchString(base):
		return "*.spec.{js,ts}"
	case strings.HasSuffix(base, "Test.java") || strings.HasSuffix(base, "Tests.java"):
		return "*Test.java"
	case strings.HasSuffix(base, "_spec.rb"):
		return "*_spec.rb"
	}
	return ""
}

// testRoot is the part of dir up to its first component that names a test directory, or "".
// Fixtures (testdata) are not tests.
func testRoot(dir string) string {
	parts := strings.Split(dir, "/")
	for i, part := range parts {
		switch part {
		case "testdata", "fixtures":
			return ""
		case "test", "tests", "testing", "__tests__", "spec", "e2e":
			return strings.Join(parts[:i+1], "/")
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// finish turns the counts into the knowledge base, every list in a fixed order.
func (s *scanner) finish() {
	var total int64
	for _, l := range s.langs {
		total += l.Bytes
	}
	for _, l := range s.langs {
		if total > 0 {
			l.Share = float64(int64(float64(l.Bytes)*1000/float64(total)+0.5)) / 10
		}
		s.k.Languages = append(s.k.Languages, *l)
	}
	sort.Slice(s.k.Languages, func(i, j int) bool {
		a, b := s.k.Languages[i], s.k.Languages[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Name < b.Name
	})
	names := make([]string, 0, len(s.dirs))
	for n := range s.dirs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ds := s.dirs[n]
		d := Dir{Name: n, Files: ds.files, Language: mainLanguage(ds.langs)}
		sort.Strings(ds.entries)
		d.Samples = ds.entries[:min(len(ds.entries), 6)]
		d.Holds = s.holds(n, d)
		s.k.Layout = append(s.k.Layout, d)
	}
	sort.Strings(s.k.TopFiles)
	for _, m := range s.manifests {
		s.readManifest(m)
	}
	var mains []string
	for d := range s.mainPkgs {
		mains = append(mains, d)
	}
	sort.Strings(mains)
	for _, d := range mains {
		target, name := "./"+d, path.Base(d)
		if d == "." {
			target, name = ".", path.Base(s.k.GoModule)
		}
		s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "go main package", Name: name, Target: target})
	}
	sort.Strings(s.pyMains)
	for _, p := range s.pyMains {
		mod := strings.ReplaceAll(path.Dir(p), "/", ".")
		s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "python __main__", Name: mod, Target: "python -m " + mod})
	}
	sort.SliceStable(s.k.EntryPoints, func(i, j int) bool {
		a, b := s.k.EntryPoints[i], s.k.EntryPoints[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	s.tests()
	s.conventions()
	s.k.Commands = dedupe(s.k.Commands)
}

func mainLanguage(langs map[string]int64) string {
	best, bestBytes := "", int64(0)
	for l, b := range langs {
		if b > bestBytes || (b == bestBytes && l < best) {
			best, bestBytes = l, b
		}
	}
	return best
}

// holds says what a top directory is for, from its name first and its contents second.
func (s *scanner) holds(name string, d Dir) string {
	switch strings.ToLower(name) {
	case "test", "tests", "testing", "__tests__", "spec", "e2e":
		return "tests"
	case "doc", "docs", "documentation":
		return "documentation"
	case "cmd":
		return "command entry points (one main package per subdirectory)"
	case "bin":
		return "executables and launcher scripts"
	case "scripts", "tools", "hack":
		return "developer and CI scripts"
	case "examples", "example", "samples":
		return "examples"
	case "internal":
		return "internal packages (not importable from outside the module)"
	case "pkg", "lib", "src":
		return "library source"
	case "api", "proto", "schemas":
		return "API definitions"
	case ".github":
		return "GitHub configuration (CI workflows, templates)"
	case "terraform", "deploy", "deployment", "k8s", "helm", "infra":
		return "deployment configuration"
	case "benchmarks", "bench":
		return "benchmarks"
	case "assets", "static", "public":
		return "static assets"
	case "config", "configs", "conf":
		return "configuration"
	case "migrations":
		return "database migrations"
	case "testdata", "fixtures":
		return "test fixtures"
	}
	if s.isPackage(name) {
		return "the " + name + " package (" + d.Language + " source)"
	}
	if d.Language != "" {
		return d.Language + " source"
	}
	return "other files"
}

// isPackage reports whether dir is a Python package (holds __init__.py).
func (s *scanner) isPackage(dir string) bool {
	st, err := os.Lstat(filepath.Join(s.root, dir, "__init__.py"))
	return err == nil && st.Mode().IsRegular()
}

func (s *scanner) tests() {
	// The test directories by their roots: tests/unit under tests says nothing new.
	roots := map[string]bool{}
	for d := range s.testDirs {
		if r := testRoot(d); r != "" {
			roots[r] = true
		}
	}
	dirs := sortedKeys(roots)
	s.k.Tests.Dirs = dirs[:min(len(dirs), 20)]
	s.k.Tests.Patterns = s.patterns
	fw := map[string]bool{}
	for _, f := range s.k.Tests.Frameworks { // found in package.json
		fw[f] = true
	}
	s.k.Tests.Frameworks = nil
	if s.patterns["*_test.go"] > 0 {
		fw["go test"] = true
	}
	if s.patterns["test_*.py"]+s.patterns["*_test.py"] > 0 || s.conftest {
		fw["pytest"] = true
	}
	for _, c := range s.k.Commands {
		for _, name := range []string{"pytest", "jest", "vitest", "mocha", "tox", "nox", "unittest", "go test", "cargo test"} {
			if strings.Contains(c.Command, name) {
				fw[name] = true
			}
		}
	}
	for f := range fw {
		s.k.Tests.Frameworks = append(s.k.Tests.Frameworks, f)
	}
	sort.Strings(s.k.Tests.Frameworks)
}

func (s *scanner) conventions() {
	has := func(p string) bool {
		_, err := os.Lstat(filepath.Join(s.root, p))
		return err == nil
	}
	add := func(c string) { s.k.Conventions = append(s.k.Conventions, c) }
	if s.k.GoModule != "" {
		add("Go: keep `gofmt` formatting; packages follow the module path `" + s.k.GoModule + "`.")
	}
	for _, f := range []struct{ file, say string }{
		{".editorconfig", "An `.editorconfig` sets indentation and line endings: follow it."},
		{".pre-commit-config.yaml", "pre-commit hooks are configured (`.pre-commit-config.yaml`): run `pre-commit run --all-files` before committing."},
		{".golangci.yml", "golangci-lint is configured (`.golangci.yml`)."},
		{".golangci.yaml", "golangci-lint is configured (`.golangci.yaml`)."},
		{".flake8", "flake8 is configured (`.flake8`)."},
		{"ruff.toml", "ruff is configured (`ruff.toml`)."},
		{".eslintrc.json", "ESLint is configured (`.eslintrc.json`)."},
		{".eslintrc.js", "ESLint is configured (`.eslintrc.js`)."},
		{"eslint.config.js", "ESLint is configured (`eslint.config.js`)."},
		{".prettierrc", "Prettier formats the code (`.prettierrc`)."},
		{"tsconfig.json", "TypeScript settings are in `tsconfig.json`."},
		{"CONTRIBUTING.md", "Read `CONTRIBUTING.md` for the project's contribution rules."},
		{"CONTRIBUTING.rst", "Read `CONTRIBUTING.rst` for the project's contribution rules."},
		{"tox.ini", "tox environments are defined in `tox.ini`."},
		{"noxfile.py", "nox sessions are defined in `noxfile.py`."},
	} {
		if has(f.file) {
			add(f.say)
		}
	}
	if s.k.Truncated {
		add(fmt.Sprintf("This knowledge base covers the first %d files of a larger repository.", maxFiles))
	}
}

func dedupe(cmds []Command) []Command {
	seen := map[string]bool{}
	var out []Command
	for _, c := range cmds {
		if seen[c.Command] {
			continue
		}
		seen[c.Command] = true
		out = append(out, c)
	}
	return out
}

// kindOf guesses what a command or target is for from its words.
func kindOf(s string) string {
	l := strings.ToLower(s)
	switch {
	case strings.Contains(l, "test") || strings.Contains(l, "pytest") || strings.Contains(l, "check") || strings.Contains(l, "coverage"):
		return "test"
	case strings.Contains(l, "lint") || strings.Contains(l, "vet") || strings.Contains(l, "fmt") || strings.Contains(l, "format") || strings.Contains(l, "ruff") || strings.Contains(l, "flake8") || strings.Contains(l, "mypy"):
		return "lint"
	case strings.Contains(l, "build") || strings.Contains(l, "compile") || strings.Contains(l, "install") || strings.Contains(l, "bundle") || strings.Contains(l, "dist"):
		return "build"
	case strings.Contains(l, "run") || strings.Contains(l, "serve") || strings.Contains(l, "start") || strings.Contains(l, "dev"):
		return "run"
	}
	return "other"
}

// readManifest adds the commands and entry points one file declares.
func (s *scanner) readManifest(rel string) {
	b, err := s.read(rel)
	if err != nil {
		return
	}
	base := path.Base(rel)
	switch {
	case strings.HasPrefix(rel, ".github/workflows/"):
		for _, c := range workflowRuns(b) {
			s.k.Commands = append(s.k.Commands, Command{Kind: kindOf(c), Command: c, Source: rel})
		}
	case base == "go.mod":
		s.goMod(b)
	case base == "pyproject.toml":
		s.pyproject(b)
	case base == "setup.cfg":
		s.setupCfg(b)
	case base == "package.json":
		s.packageJSON(b)
	default: // a Makefile
		for _, t := range makeTargets(b) {
			s.k.Commands = append(s.k.Commands, Command{Kind: kindOf(t), Command: "make " + t, Source: rel})
		}
	}
}

var makeTarget = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_./-]*)\s*:([^=]|$)`)

// makeTargets are the Makefile's explicit targets, in file order (no patterns, no special
// targets, no variable assignments).
func makeTargets(b []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		m := makeTarget.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t := m[1]
		if strings.Contains(t, "%") || strings.Contains(t, "/") || strings.Contains(t, ".") || seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// workflowRuns are the `run:` steps of a GitHub Actions workflow, one command per line, with
// the block scalars (`run: |`) read as their lines. Setup noise (echo, cd, exports) is left out.
func workflowRuns(b []byte) []string {
	var out []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimLeft(strings.TrimSpace(line), "- ")
		v, ok := strings.CutPrefix(trimmed, "run:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "|" || v == ">" || v == "|-" || v == ">-" {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				i++
				out = appendRun(out, next)
			}
			continue
		}
		out = appendRun(out, strings.Trim(v, `"'`))
	}
	return out
}

func appendRun(out []string, c string) []string {
	c = strings.TrimSpace(c)
	if c == "" || strings.HasPrefix(c, "#") || strings.HasPrefix(c, "echo ") || strings.HasPrefix(c, "cd ") ||
		strings.HasPrefix(c, "export ") || strings.Contains(c, "${{") || len(c) > 200 {
		return out
	}
	return append(out, c)
}

func (s *scanner) goMod(b []byte) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			s.k.GoModule = f[1]
		}
		if len(f) >= 2 && f[0] == "go" {
			s.k.GoVersion = f[1]
		}
	}
	s.k.Commands = append(s.k.Commands,
		Command{Kind: "build", Command: "go build ./...", Source: "go.mod"},
		Command{Kind: "test", Command: "go test ./...", Source: "go.mod"},
		Command{Kind: "lint", Command: "go vet ./...", Source: "go.mod"})
}

// toml is a minimal reader of the TOML and INI files the manifests are: section -> key -> raw
// value, with multi-line arrays joined. Enough for names, scripts and entry points.
func toml(b []byte) map[string]map[string]string {
	out := map[string]map[string]string{}
	section := ""
	var key, acc string
	depth := 0
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if depth > 0 {
			acc += " " + t
			depth += strings.Count(t, "[") - strings.Count(t, "]")
			if depth <= 0 {
				out[section][key] = acc
				depth = 0
			}
			continue
		}
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
			continue
		}
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = strings.Trim(t, "[] ")
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			continue
		}
		if out[section] == nil {
			out[section] = map[string]string{}
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			// setup.cfg continuation lines ("    name = module:func" under a key with no value).
			if key != "" {
				out[section][key] += "\n" + t
			}
			continue
		}
		key = strings.Trim(strings.TrimSpace(k), `"'`)
		v = strings.TrimSpace(v)
		out[section][key] = v
		if strings.HasPrefix(v, "[") {
			if d := strings.Count(v, "[") - strings.Count(v, "]"); d > 0 {
				depth, acc = d, v
			}
		}
	}
	return out
}

func unquote(v string) string { return strings.Trim(strings.TrimSpace(v), `"'`) }

func (s *scanner) pyproject(b []byte) {
	t := toml(b)
	s.k.PythonName = unquote(t["project"]["name"])
	if s.k.PythonName == "" {
		s.k.PythonName = unquote(t["tool.poetry"]["name"])
	}
	for _, sec := range []string{"project.scripts", "tool.poetry.scripts"} {
		keys := sortedKeys(t[sec])
		for _, k := range keys {
			s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "console script", Name: k, Target: unquote(t[sec][k])})
		}
	}
	backend := unquote(t["build-system"]["build-backend"])
	switch {
	case strings.Contains(backend, "poetry"):
		s.k.Commands = append(s.k.Commands, Command{Kind: "build", Command: "poetry install", Source: "pyproject.toml"})
	case backend != "":
		s.k.Commands = append(s.k.Commands, Command{Kind: "build", Command: "pip install -e .", Source: "pyproject.toml"})
	}
	if _, ok := t["tool.pytest.ini_options"]; ok {
		s.k.Commands = append(s.k.Commands, Command{Kind: "test", Command: "pytest", Source: "pyproject.toml"})
	}
	for _, tool := range []string{"ruff", "black", "mypy", "isort"} {
		if _, ok := t["tool."+tool]; ok {
			s.k.Conventions = append(s.k.Conventions, "Python: "+tool+" is configured in `pyproject.toml` ([tool."+tool+"]).")
		}
	}
	for _, env := range sortedKeys(t["tool.hatch.envs.default.scripts"]) {
		s.k.Commands = append(s.k.Commands, Command{Kind: kindOf(env), Command: "hatch run " + env, Source: "pyproject.toml"})
	}
}

func (s *scanner) setupCfg(b []byte) {
	t := toml(b)
	if s.k.PythonName == "" {
		s.k.PythonName = strings.TrimSpace(t["metadata"]["name"])
	}
	for _, line := range strings.Split(t["options.entry_points"]["console_scripts"], "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "console script", Name: strings.TrimSpace(k), Target: strings.TrimSpace(v)})
		}
	}
	if _, ok := t["tool:pytest"]; ok {
		s.k.Commands = append(s.k.Commands, Command{Kind: "test", Command: "pytest", Source: "setup.cfg"})
	}
	if _, ok := t["flake8"]; ok {
		s.k.Commands = append(s.k.Commands, Command{Kind: "lint", Command: "flake8", Source: "setup.cfg"})
	}
}

func (s *scanner) packageJSON(b []byte) {
	var pkg struct {
		Name            string            `json:"name"`
		Main            string            `json:"main"`
		Scripts         map[string]string `json:"scripts"`
		Bin             json.RawMessage   `json:"bin"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return
	}
	s.k.NodeName = pkg.Name
	for _, name := range sortedKeys(pkg.Scripts) {
		c := "npm run " + name
		if name == "test" {
			c = "npm test"
		}
		s.k.Commands = append(s.k.Commands, Command{Kind: kindOf(name + " " + pkg.Scripts[name]), Command: c, Source: "package.json"})
	}
	var one string
	var many map[string]string
	if json.Unmarshal(pkg.Bin, &one) == nil && one != "" {
		s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "npm bin", Name: pkg.Name, Target: one})
	} else if json.Unmarshal(pkg.Bin, &many) == nil {
		for _, k := range sortedKeys(many) {
			s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "npm bin", Name: k, Target: many[k]})
		}
	}
	if pkg.Main != "" {
		s.k.EntryPoints = append(s.k.EntryPoints, EntryPoint{Kind: "npm main", Name: pkg.Name, Target: pkg.Main})
	}
	for _, fw := range []string{"jest", "vitest", "mocha"} {
		if _, ok := pkg.DevDependencies[fw]; ok {
			s.k.Tests.Frameworks = append(s.k.Tests.Frameworks, fw)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
