package demo

import (
	"fmt"
	"sort"
	"strings"

	"github.com/codeset/codeset/shared/agentjob"
)

// Files writes the knowledge base as one instruction file per target agent, each in the form
// that agent reads (agentjob.Instructions): the same facts, framed for each.
func Files(k Knowledge) []agentjob.File {
	body := Markdown(k)
	var files []agentjob.File
	for _, in := range agentjob.Instructions {
		var content, p string
		switch in.AgentID {
		case "claude_code":
			p = in.Path
			content = "# CLAUDE.md\n\nThis file gives Claude Code guidance for working in this repository.\n\n" + body
		case "codex":
			p = in.Path
			content = "# AGENTS.md\n\nInstructions for coding agents (Codex) working in this repository.\n\n" + body
		case "copilot":
			p = in.Path
			content = "# Copilot instructions\n\nRepository-wide custom instructions for GitHub Copilot.\n\n" + body
		case "cursor":
			p = in.Path + "/codeset.mdc"
			// Cursor's project rules: front matter, then the rule's text; alwaysApply puts it in
			// every request.
			content = "---\ndescription: " + yamlString(describe(k)) + "\nglobs:\nalwaysApply: true\n---\n\n" + body
		case "gemini_cli":
			p = in.Path
			content = "# GEMINI.md\n\nContext for Gemini CLI about this repository.\n\n" + body
		default:
			continue
		}
		files = append(files, agentjob.File{Path: p, AgentID: in.AgentID, Content: content})
	}
	return files
}

// describe is the knowledge base in one line.
func describe(k Knowledge) string {
	var langs []string
	for _, l := range k.Languages[:min(len(k.Languages), 3)] {
		langs = append(langs, l.Name)
	}
	what := "a repository"
	if len(langs) > 0 {
		what = "a " + strings.Join(langs, "/") + " repository"
	}
	if k.Repo != "" {
		return fmt.Sprintf("Knowledge base of %s, %s: layout, build and test commands, entry points", k.Repo, what)
	}
	return "Knowledge base of " + what + ": layout, build and test commands, entry points"
}

func yamlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Markdown is the knowledge base as the body every instruction file shares.
func Markdown(k Knowledge) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	name := k.Repo
	if name == "" {
		name = "this repository"
	}
	w("## Overview\n\n%s: %d files", name, k.Files)
	if len(k.Languages) > 0 {
		w(", mostly %s", k.Languages[0].Name)
	}
	w(".")
	if k.GoModule != "" {
		w(" Go module `%s`", k.GoModule)
		if k.GoVersion != "" {
			w(" (go %s)", k.GoVersion)
		}
		w(".")
	}
	if k.PythonName != "" {
		w(" Python project `%s`.", k.PythonName)
	}
	if k.NodeName != "" {
		w(" Node package `%s`.", k.NodeName)
	}
	w("\n\n")

	if len(k.Languages) > 0 {
		w("## Languages\n\n| language | share of source bytes | files |\n|---|---|---|\n")
		for _, l := range k.Languages {
			w("| %s | %.1f%% | %d |\n", l.Name, l.Share, l.Files)
		}
		w("\n")
	}

	w("## Layout\n\n")
	if len(k.Layout) == 0 {
		w("All files are at the top level.\n")
	}
	for _, d := range k.Layout {
		w("- `%s/`: %s, %s", d.Name, d.Holds, plural(d.Files, "file"))
		if len(d.Samples) > 0 {
			w(" (%s)", "`"+strings.Join(d.Samples, "`, `")+"`")
		}
		w("\n")
	}
	if len(k.TopFiles) > 0 {
		top := k.TopFiles[:min(len(k.TopFiles), 15)]
		w("- top-level files: `%s`", strings.Join(top, "`, `"))
		if len(k.TopFiles) > len(top) {
			w(" and %d more", len(k.TopFiles)-len(top))
		}
		w("\n")
	}
	w("\n")

	w("## Build, test and run\n\n")
	if len(k.Commands) == 0 {
		w("No build or test command is declared in the repository's Makefile, manifests or CI workflows.\n\n")
	} else {
		for _, kind := range []string{"build", "test", "lint", "run", "other"} {
			var lines []string
			for _, c := range k.Commands {
				if c.Kind == kind {
					lines = append(lines, fmt.Sprintf("- `%s` (from `%s`)", c.Command, c.Source))
				}
			}
			if len(lines) > 0 {
				w("%s:\n\n%s\n\n", map[string]string{"build": "Build and install", "test": "Test",
					"lint": "Lint and format", "run": "Run", "other": "Other tasks"}[kind], strings.Join(lines, "\n"))
			}
		}
	}

	w("## Entry points\n\n")
	if len(k.EntryPoints) == 0 {
		w("No entry point was found (a library, or one started some other way).\n")
	}
	for _, e := range k.EntryPoints {
		w("- %s `%s`: `%s`\n", e.Kind, e.Name, e.Target)
	}
	w("\n")

	w("## Tests\n\n")
	if len(k.Tests.Frameworks) > 0 {
		w("Frameworks: %s.\n", strings.Join(k.Tests.Frameworks, ", "))
	}
	if len(k.Tests.Dirs) > 0 {
		w("Test directories: `%s`.\n", strings.Join(k.Tests.Dirs, "`, `"))
	}
	pats := sortedKeys(k.Tests.Patterns)
	sort.SliceStable(pats, func(i, j int) bool { return k.Tests.Patterns[pats[i]] > k.Tests.Patterns[pats[j]] })
	if k.Tests.Patterns["*_test.go"] > 0 {
		w("Go tests sit beside the code they test, in `*_test.go` files of the same package.\n")
	}
	if len(pats) > 0 {
		var parts []string
		for _, p := range pats {
			parts = append(parts, fmt.Sprintf("`%s` (%d)", p, k.Tests.Patterns[p]))
		}
		w("Test files: %s.\n", strings.Join(parts, ", "))
	}
	if len(k.Tests.Frameworks)+len(k.Tests.Dirs)+len(pats) == 0 {
		w("No tests were found.\n")
	}
	w("\n")

	w("## Working here\n\n")
	w("- Run the tests that cover what you change before you finish; add a test with every fix.\n")
	w("- Keep changes small and in the style of the surrounding code.\n")
	for _, c := range k.Conventions {
		w("- %s\n", c)
	}
	return b.String()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
