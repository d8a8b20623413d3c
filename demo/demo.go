// Package demo is the demo dataset: six small, real tasks written for Codeset (three in Go, two
// in Python, one in shell), embedded in the binary so `codeset serve` can load them on first
// start from any working directory, with no network. Each task is a folder under tasks/:
//
//	task.json        the SWE-bench fields (base_commit, test lists, ...) and the environment
//	problem.md       the problem statement
//	patch.diff       the gold patch
//	test_patch.diff  the tests that grade it
//	repo.txtar       the work tree at its base commit, as plain text (one "-- path --" section
//	                 per file), built into a git repository and packed as an archive at import
//
// See README.md for the test naming convention and how each task was validated.
package demo

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"

	"github.com/codeset/codeset/shared/dataset"
)

// Name and Description of the demo dataset.
const (
	Name        = "demo"
	Description = "Small real tasks written for Codeset, runnable offline: Go (go test -json), Python (JUnit XML) and shell (JUnit XML)."
)

//go:embed README.md tasks
var files embed.FS

// FS is the demo's files.
func FS() fs.FS { return files }

// JSONL returns the demo dataset as the JSONL file it stands for, one row per task in folder
// order, with paths relative to FS: the rows any dataset file would carry, with the environment
// given as "source_txtar".
func JSONL() ([]byte, error) {
	dirs, err := fs.ReadDir(files, "tasks")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		row, err := task(path.Join("tasks", d.Name()))
		if err != nil {
			return nil, fmt.Errorf("demo task %s: %w", d.Name(), err)
		}
		out.Write(row)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// Rows returns the demo's samples, read with the importer's own rules so the demo is held to
// what any imported dataset is.
func Rows() ([]dataset.Row, error) {
	text, err := JSONL()
	if err != nil {
		return nil, err
	}
	rows, bad, err := dataset.Parse(bytes.NewReader(text), files)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("demo dataset: %w", bad[0])
	}
	return rows, nil
}

// task assembles one task folder into its JSONL row.
func task(dir string) ([]byte, error) {
	read := func(name string) (string, error) {
		b, err := fs.ReadFile(files, path.Join(dir, name))
		return string(b), err
	}
	meta, err := read("task.json")
	if err != nil {
		return nil, err
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(meta), &row); err != nil {
		return nil, fmt.Errorf("task.json: %w", err)
	}
	for field, name := range map[string]string{"problem_statement": "problem.md", "patch": "patch.diff", "test_patch": "test_patch.diff"} {
		if row[field], err = read(name); err != nil {
			return nil, err
		}
	}
	row["sample_id"] = path.Base(dir)
	if _, ok := row["environment_setup_commit"]; !ok {
		row["environment_setup_commit"] = row["base_commit"] // one commit: the tree has no separate setup
	}
	env, ok := row["environment"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("task.json: no environment object")
	}
	env["source_txtar"] = path.Join(dir, "repo.txtar")
	return json.Marshal(row)
}
