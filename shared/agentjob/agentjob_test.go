package agentjob_test

import (
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/agentjob"
)

func TestAgents(t *testing.T) {
	agents, err := agentjob.Agents("")
	if err != nil || len(agents) != 1 || agents[0].ID != "demo" || len(agents[0].Command) != 0 {
		t.Fatalf("built in: %+v %v", agents, err)
	}
	agents, err = agentjob.Agents(`[{"id":"claude_code","name":"Claude Code","command":["claude","-p","x"],"image":"img:1"},
		{"id":"demo","name":"Demo (custom)"},{"id":"codex"}]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 3 || agents[0].Name != "Demo (custom)" || agents[1].Image != "img:1" || agents[2].Name != "codex" {
		t.Fatalf("configured: %+v", agents)
	}
	if ag, ok := agentjob.Find(agents, "claude_code"); !ok || ag.Command[0] != "claude" {
		t.Fatalf("find: %+v %v", ag, ok)
	}
	if _, ok := agentjob.Find(agents, "cursor"); ok {
		t.Fatal("found an agent that is not configured")
	}
	for setting, want := range map[string]string{
		`{"id":"x"}`:               "not a JSON list",
		`[{"id":"Bad Id"}]`:        "agent id",
		`[{"id":""}]`:              "agent id",
		`[{"id":"a"},{"id":"a"}]`:  "listed twice",
		`[{"id":"../etc/passwd"}]`: "agent id",
	} {
		if _, err := agentjob.Agents(setting); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", setting, err, want)
		}
	}
}

func TestInstructionAgent(t *testing.T) {
	for path, want := range map[string]string{
		"CLAUDE.md": "claude_code", "AGENTS.md": "codex", ".github/copilot-instructions.md": "copilot",
		".cursor/rules/kb.mdc": "cursor", "GEMINI.md": "gemini_cli",
		".cursor/rules/a/b.mdc": "", ".cursor/rules/kb.md": "", "README.md": "", "docs/CLAUDE.md": "",
	} {
		if got := agentjob.InstructionAgent(path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
