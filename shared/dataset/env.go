package dataset

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/blob"
)

// BaseTime is the author and committer date of every work tree built from a source directory:
// with fixed dates, names and file modes, the same files always give the same base_commit.
var BaseTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Blobs prepares environments in a blob store.
type Blobs struct {
	Store blob.Store
	// Known are the archives stored already, by environment digest (the dataset's samples'
	// and this import's), so that an import of an unchanged environment stores nothing again
	// and records the same reference: a work tree built again from a source directory has the
	// same commit, but not the same bytes (git's index holds the files' times).
	Known map[string]events.BlobRef
	sums  map[string]string // archive file -> digest, so a file shared by many rows is read once
}

// Prepare stores the row's environment archive in the blob store and records its reference
// and digest in the row's content. A work tree built from a source directory must land on the
// row's base_commit.
func (b *Blobs) Prepare(ctx context.Context, row *Row) *RowError {
	env := &row.Content.Environment
	if b.Known == nil {
		b.Known = map[string]events.BlobRef{}
	}
	var digest, field string
	var open func() (io.ReadCloser, error)
	switch {
	case row.SourceFiles != nil:
		field = "environment.source_dir"
		tmp, err := os.MkdirTemp("", "codeset-env-")
		if err != nil {
			return &RowError{Line: row.Line, Field: field, Msg: err.Error()}
		}
		defer os.RemoveAll(tmp)
		tree := filepath.Join(tmp, "tree")
		commit, err := BuildRepo(ctx, row.SourceFiles, filepath.Join(tree, DefaultWorkDir))
		if err != nil {
			return &RowError{Line: row.Line, Field: field, Msg: err.Error()}
		}
		if commit != row.Content.BaseCommit {
			return &RowError{Line: row.Line, Field: "base_commit", Msg: fmt.Sprintf("is %s, but the work tree built from environment.source_dir is at commit %s", row.Content.BaseCommit, commit)}
		}
		digest = "git-" + commit
		open = func() (io.ReadCloser, error) {
			packed := filepath.Join(tmp, "env.tar.gz")
			if err := WriteArchive(tree, packed); err != nil {
				return nil, err
			}
			return os.Open(packed)
		}
	case row.Archive != nil:
		field = "environment.archive"
		if b.sums == nil {
			b.sums = map[string]string{}
		}
		digest = b.sums[row.ArchiveName]
		if digest == "" {
			sum, err := fileSHA256(row.Archive, row.ArchiveName)
			if err != nil {
				return &RowError{Line: row.Line, Field: field, Msg: err.Error()}
			}
			digest = "sha256-" + sum
			b.sums[row.ArchiveName] = digest
		}
		open = func() (io.ReadCloser, error) { return row.Archive.Open(row.ArchiveName) }
	default:
		env.Archive, env.ArchiveRef, row.Content.EnvironmentDigest = "", nil, ""
		return nil
	}
	ref, known := b.Known[digest]
	if !known {
		rc, err := open()
		if err != nil {
			return &RowError{Line: row.Line, Field: field, Msg: err.Error()}
		}
		stored, err := b.Store.Put(ctx, rc)
		rc.Close()
		if err != nil {
			return &RowError{Line: row.Line, Field: field, Msg: fmt.Sprintf("store the archive: %v", err)}
		}
		ref = events.BlobRef{Digest: stored.Digest, Size: stored.Size}
		b.Known[digest] = ref
	}
	env.Archive, env.ArchiveRef, row.Content.EnvironmentDigest = "", &ref, digest
	return nil
}

// ReadTree reads every regular file of src into a map by slash path. A source directory holds
// plain files: a .git directory or a symbolic link in it is an error.
func ReadTree(src fs.FS) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == ".git":
			return fmt.Errorf("%s: a source directory holds plain files, not a git repository", p)
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: only regular files are allowed", p)
		}
		data, err := fs.ReadFile(src, p)
		files[p] = data
		return err
	})
	return files, err
}

// BuildRepo writes files into dir, makes it a git repository with one commit of them on branch
// main, and returns the commit. Every file is committed with mode 0644 (verifiers are run
// through their interpreter), by a fixed author at BaseTime, and without the user's git
// configuration, so the commit depends on the files alone.
func BuildRepo(ctx context.Context, files map[string][]byte, dir string) (string, error) {
	if len(files) == 0 {
		return "", fmt.Errorf("no files to make a work tree of")
	}
	for p, data := range files {
		if !relativeClean(p) || p == "." || slices.Contains(strings.Split(p, "/"), ".git") {
			return "", fmt.Errorf("%q is not a relative path inside the work tree", p)
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return "", err
		}
	}
	stamp := BaseTime.Format(time.RFC3339)
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Codeset", "GIT_AUTHOR_EMAIL=datasets@codeset.invalid", "GIT_AUTHOR_DATE="+stamp,
			"GIT_COMMITTER_NAME=Codeset", "GIT_COMMITTER_EMAIL=datasets@codeset.invalid", "GIT_COMMITTER_DATE="+stamp)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	steps := [][]string{
		{"init", "-q", "--template=", "-b", "main"},
		{"-c", "core.autocrlf=false", "-c", "core.fileMode=true", "add", "-A"},
		{"-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", "base"},
	}
	for _, s := range steps {
		if _, err := git(s...); err != nil {
			return "", err
		}
	}
	return git("rev-parse", "HEAD")
}

// WriteArchive packs the directory root into a tar.gz at dst with sorted entries, fixed times
// and no owners.
func WriteArchive(root, dst string) error {
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, p := range names {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: BaseTime, Mode: int64(st.Mode().Perm()), Format: tar.FormatPAX}
		switch {
		case st.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case st.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}

func fileSHA256(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
