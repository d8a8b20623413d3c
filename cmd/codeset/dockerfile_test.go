package main

// There is no Docker engine here to build the sandbox images: these tests check what can be
// checked without one, that the Dockerfiles and the script agree with the code.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/codeset/codeset/shared/config"
)

// instruction is one Dockerfile instruction: its keyword (upper case) and its words.
type instruction struct {
	cmd  string
	args []string
	raw  string
}

// readDockerfile reads the instructions of a Dockerfile: continuation lines joined, comments
// and blank lines skipped.
func readDockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if more, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(trimmed)
		fields := strings.Fields(cur.String())
		out = append(out, instruction{cmd: strings.ToUpper(fields[0]), args: fields[1:], raw: strings.TrimSpace(strings.TrimPrefix(cur.String(), fields[0]))})
		cur.Reset()
	}
	return out
}

func find(ins []instruction, cmd string) []instruction {
	var out []instruction
	for _, i := range ins {
		if i.cmd == cmd {
			out = append(out, i)
		}
	}
	return out
}

// entryPoint checks the ENTRYPOINT of a sandbox image: the codeset binary where the Cloud Run
// runtime runs it by default, then `sandboxd` and flags that sandboxd has.
func entryPoint(t *testing.T, ins []instruction) []string {
	t.Helper()
	eps := find(ins, "ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("%d ENTRYPOINTs", len(eps))
	}
	var argv []string
	if err := json.Unmarshal([]byte(eps[0].raw), &argv); err != nil {
		t.Fatalf("ENTRYPOINT is not in exec form: %v", err)
	}
	if len(argv) < 2 || argv[0] != config.Default().CloudRunAgent || argv[1] != "sandboxd" {
		t.Fatalf("ENTRYPOINT %v: want %s sandboxd ...", argv, config.Default().CloudRunAgent)
	}
	if err := flagsOfSandboxd(argv[2:]); err != nil {
		t.Errorf("ENTRYPOINT %v: %v", argv, err)
	}
	return argv
}

// flagsOfSandboxd is nil when every flag of args is one of sandboxd's: it parses its flags
// before it does anything, and with -help after them it returns at once unless one is unknown.
func flagsOfSandboxd(args []string) error {
	stderr := os.Stderr
	os.Stderr, _ = os.Open(os.DevNull) // the usage it prints
	defer func() { os.Stderr.Close(); os.Stderr = stderr }()
	return sandboxd(append(slices.Clone(args), "-help"))
}

func TestFlagsOfSandboxd(t *testing.T) {
	if err := flagsOfSandboxd([]string{"--init", "--no-such-flag"}); err == nil {
		t.Error("an unknown flag passed")
	}
	if err := flagsOfSandboxd([]string{"--init", "--archive-url", "u", "--archive-size", "1"}); err != nil {
		t.Error(err)
	}
}

// TestSandboxBaseImageDockerfile: the base image is built from sources that exist, statically,
// with the Go the module asks for, on Debian with git and Python 3, and starts `codeset
// sandboxd` where the Cloud Run runtime expects it.
func TestSandboxBaseImageDockerfile(t *testing.T) {
	root, _ := filepath.Abs("../..")
	ins := readDockerfile(t, filepath.Join(root, "scripts/sandbox/Dockerfile"))
	for _, c := range find(ins, "COPY") {
		var words []string
		for _, w := range c.args {
			if !strings.HasPrefix(w, "--") {
				words = append(words, w)
			}
		}
		if strings.Contains(c.raw, "--from=") {
			continue // from a build stage
		}
		for _, src := range words[:len(words)-1] {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: not in the repository: %v", src, err)
			}
		}
	}
	text := ""
	for _, i := range ins {
		text += i.cmd + " " + i.raw + "\n"
	}
	gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || !strings.Contains(text, "ARG GO_IMAGE=golang:"+string(goVersion[1])+"-") {
		t.Errorf("the build stage's Go is not the module's (go %s)", goVersion[1])
	}
	for _, want := range []string{
		"CGO_ENABLED=0 go build", "./cmd/codeset", "ARG DEBIAN_IMAGE=debian:",
		" git ", " python3 ", "COPY --from=build /usr/local/go /usr/local/go",
		"COPY --from=build /out/codeset " + config.Default().CloudRunAgent,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the Dockerfile has no %q", want)
		}
	}
	entryPoint(t, ins)
	// The work dir of an archive is /workspace/<name>: its parent is in the image.
	if !strings.Contains(text, "mkdir -p /workspace") {
		t.Error("the image has no /workspace")
	}
}

// TestSampleImageDockerfile: a sample's image gets the base image's agent, where it runs in the
// base image, and needs no build context (the script gives it an empty one).
func TestSampleImageDockerfile(t *testing.T) {
	root, _ := filepath.Abs("../..")
	ins := readDockerfile(t, filepath.Join(root, "scripts/sandbox/sample.Dockerfile"))
	copies := find(ins, "COPY")
	agent := config.Default().CloudRunAgent
	if len(copies) != 1 || copies[0].raw != "--from=agent "+agent+" "+agent {
		t.Errorf("COPY: %v, want the agent's binary from the base image", copies)
	}
	froms := find(ins, "FROM")
	if len(froms) != 2 || froms[0].raw != "${BASE_IMAGE} AS agent" || froms[1].raw != "${SAMPLE_IMAGE}" {
		t.Errorf("FROM: %v", froms)
	}
	base := entryPoint(t, readDockerfile(t, filepath.Join(root, "scripts/sandbox/Dockerfile")))
	if got := entryPoint(t, ins); !slices.Equal(got, base) {
		t.Errorf("ENTRYPOINT %v, the base image's is %v", got, base)
	}
}

// TestSandboxImageScript: the script is valid bash and builds the Dockerfiles that exist.
func TestSandboxImageScript(t *testing.T) {
	root, _ := filepath.Abs("../..")
	script := filepath.Join(root, "scripts/sandbox-image.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v: %s", err, out)
	}
	b, _ := os.ReadFile(script)
	for _, f := range regexp.MustCompile(`--file (\S+)`).FindAllStringSubmatch(string(b), -1) {
		if _, err := os.Stat(filepath.Join(root, f[1])); err != nil {
			t.Errorf("the script builds %s: %v", f[1], err)
		}
	}
	if st, err := os.Stat(script); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("the script is not executable: %v", err)
	}
	// Without arguments it says how it is used, and builds nothing.
	out, err := exec.Command("bash", script).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "scripts/sandbox-image.sh sample <sample image> <target> <base image>") {
		t.Errorf("usage: %v: %s", err, out)
	}
}
