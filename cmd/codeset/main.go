// Command codeset is the one binary of the system:
//
//	codeset serve            everything in one process (embedded default)
//	codeset sandboxd         the agent inside every sandbox
//	codeset dataset import   load samples from SWE-bench-style JSONL
//	codeset billing replay   recompute every balance from the event log
//	codeset credits grant    give a user credit
//	codeset agent-job run    one agent job, as its environment describes (runners run it)
package main

import (
	"fmt"
	"os"
	"sort"
)

// commands maps a subcommand path ("serve", "dataset import") to its entry point, each in a file
// of its own.
var commands = map[string]func(args []string) error{
	"serve":          serve,
	"sandboxd":       sandboxd,
	"dataset import": datasetImport,
	"billing replay": billingReplay,
	"credits grant":  creditsGrant,
	"users":          users,
	"agent-job run":  agentJobRun,
}

func main() {
	args := os.Args[1:]
	for n := min(2, len(args)); n >= 1; n-- {
		name := args[0]
		if n == 2 {
			name += " " + args[1]
		}
		if run, ok := commands[name]; ok {
			if err := run(args[n:]); err != nil {
				fmt.Fprintln(os.Stderr, "codeset "+name+":", err)
				os.Exit(1)
			}
			return
		}
	}
	usage()
	os.Exit(2)
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: codeset <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
	fmt.Fprintln(os.Stderr, "\n`codeset <command> --help` lists a command's flags and their environment variables.")
}
