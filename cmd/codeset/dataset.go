package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/codeset/codeset/functions"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/dataset"
)

// datasetImport loads SWE-bench-style JSONL (plain or gzipped) into a dataset: every row checked
// first (a bad row names its line and field, and stops the import unless --skip-invalid), then
// one new version per sample whose content changed. A progress bar on a terminal, a plain
// summary otherwise.
func datasetImport(args []string) error {
	fs := flag.NewFlagSet("dataset import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: codeset dataset import FILE.jsonl[.gz] --dataset NAME [--description TEXT] [--skip-invalid] [flags]")
		fs.PrintDefaults()
	}
	var cfg config.Config
	if err := cfg.Bind(fs); err != nil {
		return err
	}
	name := fs.String("dataset", "", "dataset to import into (required); created on first import")
	description := fs.String("description", "", "the dataset's description (kept when not given)")
	versionDescription := fs.String("version-description", "", "describes the new versions this import creates (default: which fields changed)")
	skipInvalid := fs.Bool("skip-invalid", false, "import the valid rows even when some are invalid")
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:] // flags may follow the file
	}
	switch {
	case len(files) != 1:
		fs.Usage()
		return errors.New("give exactly one JSONL file")
	case *name == "":
		return errors.New("--dataset is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rows, invalid, err := dataset.ReadFile(files[0])
	if err != nil {
		return err
	}
	if len(rows)+len(invalid) == 0 {
		return fmt.Errorf("%s: no rows", files[0])
	}
	cfg.LogLevel = "error"
	a, err := functions.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	bar := newProgress(os.Stderr)
	res, err := functions.ImportDataset(ctx, a, rows, invalid, functions.ImportOptions{
		Dataset: *name, Description: *description, VersionDescription: *versionDescription,
		SkipInvalid: *skipInvalid, Progress: bar.update,
	})
	bar.done()
	if err != nil {
		return err
	}
	for _, r := range res.Invalid {
		fmt.Fprintln(os.Stderr, "skipped "+r.Error())
	}
	fmt.Printf("dataset %s: %d rows imported in %.1fs: %d new samples, %d new versions, %d unchanged, %d invalid rows skipped\n",
		*name, res.Rows, time.Since(start).Seconds(), res.New, res.Versioned, res.Unchanged, len(res.Invalid))
	return nil
}

// progress draws a bar on a terminal and nothing elsewhere (logs and pipes get the summary).
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	drawn bool
}

func newProgress(f *os.File) *progress {
	st, err := f.Stat()
	return &progress{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) update(stage string, done, total int) {
	if !p.tty || total == 0 || (done < total && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	fill := done * width / total
	label := map[string]string{"prepare": "checking environments", "append": "importing samples"}[stage]
	fmt.Fprintf(p.w, "\r%-22s [%s%s] %d/%d", label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
