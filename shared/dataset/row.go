// Package dataset reads sample rows for the catalog: SWE-bench-style JSONL (plain or gzipped)
// with Codeset's fields and each sample's environment, checked field by field so a bad row
// names its line and field, and prepares each environment as an archive in the data dir.
package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/sandbox/changes"
)

// RowError is what is wrong with one row: its line (1-based), the field, and why.
type RowError struct {
	Line  int
	Field string
	Msg   string
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: field %s: %s", e.Line, e.Field, e.Msg)
}

// Row is one valid sample row and where its environment comes from.
type Row struct {
	Line               int
	Content            events.SampleContent
	VersionDescription string
	// Exactly one of these gives the environment's files, unless the environment is an image:
	Archive     fs.FS             // holding "archive": a tar.gz to copy into the data dir
	ArchiveName string            // the archive's path in Archive, for messages and the read cache
	SourceFiles map[string][]byte // plain files (slash paths) to make a git work tree of, committed at base_commit
}

// DefaultWorkDir is the work directory of environments built from a source directory: the
// archive holds the work tree under it.
const DefaultWorkDir = "repo"

// MaxLineBytes bounds one JSONL row (patches of real repositories can be large).
const MaxLineBytes = 64 << 20

// ReadFile reads a JSONL file, gzipped or not (told by its first bytes, not its name). Paths in
// the rows (environment archive, source_dir, source_txtar) are relative to the file's directory
// and stay inside it.
func ReadFile(name string) ([]Row, []*RowError, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		defer gz.Close()
		r = gz
	}
	return Parse(r, os.DirFS(filepath.Dir(name)))
}

// Parse reads JSONL rows whose paths are relative to base. Blank lines are skipped. It returns
// the valid rows and an error for every invalid one (a row is invalid at its first bad field);
// the error is only for reading.
func Parse(r io.Reader, base fs.FS) ([]Row, []*RowError, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), MaxLineBytes)
	var rows []Row
	var bad []*RowError
	seen := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		row, rerr := parseRow(line, text, base)
		if rerr == nil {
			if first, dup := seen[row.Content.SampleID]; dup {
				rerr = &RowError{Line: line, Field: "sample_id", Msg: fmt.Sprintf("%q is already the sample of line %d", row.Content.SampleID, first)}
			} else {
				seen[row.Content.SampleID] = line
			}
		}
		if rerr != nil {
			bad = append(bad, rerr)
			continue
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return rows, bad, fmt.Errorf("line %d: longer than %d bytes", line+1, MaxLineBytes)
		}
		return rows, bad, fmt.Errorf("after line %d: %w", line, err)
	}
	return rows, bad, nil
}

var sampleIDPattern = regexp.MustCompile(`^[^/\\\s\x00-\x1f\x7f]{1,200}$`)

// fields reads one row's fields with their type checks; the first problem wins.
type fields struct {
	line int
	raw  map[string]json.RawMessage
	err  *RowError
}

func (f *fields) fail(field, format string, a ...any) {
	if f.err == nil {
		f.err = &RowError{Line: f.line, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
}

// lookup finds the first present, non-null key among names (SWE-bench's upper-case list names
// and the lower-case ones of a downloaded sample are both accepted).
func (f *fields) lookup(names ...string) (json.RawMessage, string, bool) {
	for _, n := range names {
		if v, ok := f.raw[n]; ok && string(v) != "null" {
			return v, n, true
		}
	}
	return nil, names[0], false
}

func (f *fields) str(required bool, names ...string) string {
	v, name, ok := f.lookup(names...)
	if !ok {
		if required {
			f.fail(name, "is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		f.fail(name, "must be a string")
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		f.fail(name, "must not be empty")
	}
	return s
}

// list reads a test list: a JSON array of strings, or a string holding one (as SWE-bench
// publishes them).
func (f *fields) list(required bool, names ...string) []string {
	v, name, ok := f.lookup(names...)
	if !ok {
		if required {
			f.fail(name, "is required")
		}
		return []string{}
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		v = json.RawMessage(s)
	}
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		f.fail(name, "must be a JSON array of strings, or a string holding one")
		return []string{}
	}
	for i, t := range out {
		if strings.TrimSpace(t) == "" {
			f.fail(name, "entry %d is an empty test name", i)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func parseRow(line int, text []byte, base fs.FS) (Row, *RowError) {
	f := &fields{line: line}
	if err := json.Unmarshal(text, &f.raw); err != nil || f.raw == nil {
		return Row{}, &RowError{Line: line, Msg: "not a JSON object"}
	}
	c := events.SampleContent{
		InstanceID:             f.str(true, "instance_id"),
		Repo:                   f.str(true, "repo"),
		BaseCommit:             f.str(true, "base_commit"),
		Patch:                  f.str(true, "patch"),
		TestPatch:              f.str(true, "test_patch"),
		ProblemStatement:       f.str(true, "problem_statement"),
		HintsText:              f.str(false, "hints_text"),
		EnvironmentSetupCommit: f.str(false, "environment_setup_commit"),
		FailToPass:             f.list(true, "FAIL_TO_PASS", "fail_to_pass"),
		PassToPass:             f.list(true, "PASS_TO_PASS", "pass_to_pass"),
		FailToFail:             f.list(false, "FAIL_TO_FAIL", "fail_to_fail"),
		SampleID:               f.str(false, "sample_id"),
		Language:               f.str(false, "language"),
		Verifier:               f.str(false, "verifier"),
		NonCodePatch:           f.str(false, "non_code_patch"),
		Description:            f.str(false, "description"),
	}
	row := Row{Line: line, VersionDescription: f.str(false, "version_description")}
	if f.err != nil {
		return Row{}, f.err
	}
	if c.SampleID == "" {
		c.SampleID = c.InstanceID
	}
	if !sampleIDPattern.MatchString(c.SampleID) || c.SampleID == "." || c.SampleID == ".." {
		name := "sample_id"
		if _, given := f.raw["sample_id"]; !given {
			name = "instance_id"
		}
		return Row{}, &RowError{Line: line, Field: name, Msg: fmt.Sprintf("%q cannot be a sample id: 1 to 200 characters, no '/', '\\', spaces or control characters", c.SampleID)}
	}
	if c.Language == "" {
		c.Language = "unknown"
	}
	if c.Verifier == "" {
		c.Verifier = "test_suite"
	}
	if !slices.Contains(events.VerifierKinds, c.Verifier) {
		return Row{}, &RowError{Line: line, Field: "verifier", Msg: fmt.Sprintf("%q is not one of %s", c.Verifier, strings.Join(events.VerifierKinds, ", "))}
	}
	for _, lists := range [][2][]string{{c.FailToPass, c.PassToPass}, {c.FailToPass, c.FailToFail}, {c.PassToPass, c.FailToFail}} {
		for _, t := range lists[0] {
			if slices.Contains(lists[1], t) {
				return Row{}, &RowError{Line: line, Field: "FAIL_TO_PASS", Msg: fmt.Sprintf("test %q is in more than one of FAIL_TO_PASS, PASS_TO_PASS, FAIL_TO_FAIL", t)}
			}
		}
	}
	env, rerr := parseEnvironment(line, f.raw["environment"], base, &row)
	if rerr != nil {
		return Row{}, rerr
	}
	c.Environment = env
	row.Content = c
	return row, nil
}

// DefaultProtectedPaths are a sample's protected paths when its row names none: the agent's
// changes to them are not graded. They are the tests by the usual conventions (a tests, e2e,
// __tests__ or src/test directory; test_*.py, *_test.py, *_test.go, *.test.*, *.spec.* files),
// all of which SWE-bench's own split of a pull request puts in the test patch, never in the fix;
// and what Python and pytest load by themselves (conftest.py, sitecustomize.py,
// usercustomize.py, .pth files). Compiled Python (__pycache__) is never carried, whatever this
// says (shared/sandbox/changes). Directories that
// hold library code as well as tests (django/test, sympy/testing, src/_pytest) are left out. A
// row gives "protected_paths": [] for none.
var DefaultProtectedPaths = []string{
	"**/tests", "**/e2e", "**/__tests__", "**/src/test",
	"**/test_*.py", "**/*_test.py", "**/*_test.go", "**/*.test.*", "**/*.spec.*",
	"**/conftest.py", "**/sitecustomize.py", "**/usercustomize.py", "**/*.pth",
}

type rawEnvironment struct {
	Image           *string   `json:"image"`
	Archive         *string   `json:"archive"`
	SourceDir       *string   `json:"source_dir"`
	SourceTxtar     *string   `json:"source_txtar"`
	WorkDir         *string   `json:"work_dir"`
	VerifierCommand *string   `json:"verifier_command"`
	ReportFormat    *string   `json:"report_format"`
	ReportPaths     *[]string `json:"report_paths"`
	ProtectedPaths  *[]string `json:"protected_paths"`
}

func parseEnvironment(line int, raw json.RawMessage, base fs.FS, row *Row) (events.Environment, *RowError) {
	bad := func(field, format string, a ...any) (events.Environment, *RowError) {
		return events.Environment{}, &RowError{Line: line, Field: "environment" + field, Msg: fmt.Sprintf(format, a...)}
	}
	if len(raw) == 0 || string(raw) == "null" {
		return bad("", "is required: an object with image or archive or source_dir, work_dir, verifier_command, report_format and report_paths")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return bad("", "must be an object")
	}
	var r rawEnvironment
	for k, v := range keys {
		var err error
		switch k {
		case "image":
			err = json.Unmarshal(v, &r.Image)
		case "archive":
			err = json.Unmarshal(v, &r.Archive)
		case "source_dir":
			err = json.Unmarshal(v, &r.SourceDir)
		case "source_txtar":
			err = json.Unmarshal(v, &r.SourceTxtar)
		case "work_dir":
			err = json.Unmarshal(v, &r.WorkDir)
		case "verifier_command":
			err = json.Unmarshal(v, &r.VerifierCommand)
		case "report_format":
			err = json.Unmarshal(v, &r.ReportFormat)
		case "report_paths":
			err = json.Unmarshal(v, &r.ReportPaths)
			if err != nil {
				return bad(".report_paths", "must be an array of strings")
			}
			continue
		case "protected_paths":
			if err := json.Unmarshal(v, &r.ProtectedPaths); err != nil {
				return bad(".protected_paths", "must be an array of strings (globs)")
			}
			continue
		default:
			return bad("."+k, "is not a field of an environment (image, archive, source_dir, source_txtar, work_dir, verifier_command, report_format, report_paths, protected_paths)")
		}
		if err != nil {
			return bad("."+k, "must be a string")
		}
	}
	val := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	env := events.Environment{Image: val(r.Image), WorkDir: val(r.WorkDir), VerifierCommand: val(r.VerifierCommand), ReportFormat: val(r.ReportFormat)}
	if r.ReportPaths != nil {
		env.ReportPaths = *r.ReportPaths
	}
	archive, sourceDir, sourceTxtar := val(r.Archive), val(r.SourceDir), val(r.SourceTxtar)
	given := 0
	for _, s := range []string{archive, sourceDir, sourceTxtar} {
		if s != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return bad("", "give one of archive, source_dir and source_txtar, not several")
	case given == 0 && env.Image == "":
		return bad("", "needs an image, an archive, a source_dir or a source_txtar")
	}
	if err := validImage(env.Image); err != nil {
		return bad(".image", "%q %v", env.Image, err)
	}
	if strings.TrimSpace(env.VerifierCommand) == "" {
		return bad(".verifier_command", "is required")
	}
	if !slices.Contains(events.ReportFormats, env.ReportFormat) {
		return bad(".report_format", "%q is not one of %s", env.ReportFormat, strings.Join(events.ReportFormats, ", "))
	}
	if env.ReportFormat == "junit" && len(env.ReportPaths) == 0 {
		return bad(".report_paths", "is required for junit reports: the files the verifier writes, relative to work_dir")
	}
	for _, p := range env.ReportPaths {
		if !relativeClean(p) {
			return bad(".report_paths", "%q must be a relative path inside work_dir", p)
		}
	}
	env.ProtectedPaths = DefaultProtectedPaths
	if r.ProtectedPaths != nil {
		env.ProtectedPaths = *r.ProtectedPaths
	}
	for _, p := range env.ProtectedPaths {
		if err := changes.ValidPattern(p); err != nil {
			return bad(".protected_paths", "%q: %v", p, err)
		}
	}
	switch {
	case sourceDir != "" || sourceTxtar != "":
		field, p := ".source_dir", sourceDir
		if sourceTxtar != "" {
			field, p = ".source_txtar", sourceTxtar
		}
		if env.WorkDir == "" {
			env.WorkDir = DefaultWorkDir
		}
		if env.WorkDir != DefaultWorkDir {
			return bad(".work_dir", "must be %q (or absent) for an environment built from source", DefaultWorkDir)
		}
		if !relativeClean(p) {
			return bad(field, "%q must be a relative path inside the dataset file's directory", p)
		}
		var files map[string][]byte
		var err error
		if sourceTxtar != "" {
			var text []byte
			if text, err = fs.ReadFile(base, p); err == nil {
				files, err = ParseTxtar(text)
			}
		} else {
			var sub fs.FS
			if sub, err = fs.Sub(base, p); err == nil {
				files, err = ReadTree(sub)
			}
		}
		if err != nil {
			return bad(field, "%v", err)
		}
		if len(files) == 0 {
			return bad(field, "%s holds no files", p)
		}
		row.SourceFiles = files
	case archive != "":
		if env.WorkDir == "" || !relativeClean(env.WorkDir) {
			return bad(".work_dir", "is required: the repository's directory inside the archive, relative (e.g. %q)", DefaultWorkDir)
		}
		if !relativeClean(archive) {
			return bad(".archive", "%q must be a relative path inside the dataset file's directory", archive)
		}
		if st, err := fs.Stat(base, archive); err != nil || !st.Mode().IsRegular() {
			return bad(".archive", "%s is not a file", archive)
		}
		row.Archive, row.ArchiveName = base, archive
	default:
		if env.WorkDir == "" {
			return bad(".work_dir", "is required: the repository's directory inside the image")
		}
	}
	return env, nil
}

// relativeClean reports whether p is a relative slash path that stays inside its root.
func relativeClean(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return false
	}
	c := path.Clean(p)
	return c == p && c != ".." && !strings.HasPrefix(c, "../")
}

// validImage checks an environment's image reference: a registry's (what Cloud Run and the local
// runtime pull: scripts/sandbox-image.sh prints one by digest), or a local runtime's OCI layout
// or docker archive. A bad one would otherwise be found only when a session starts.
func validImage(ref string) error {
	if ref == "" || strings.HasPrefix(ref, "oci:") || strings.HasPrefix(ref, "docker-archive:") {
		return nil
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("is not an image reference: %v", err)
	}
	return nil
}
