package envarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codeset/codeset/shared/blob"
)

// Fetch puts the work tree of the environment archive at url (a signed URL of the blob store)
// at workDir: it downloads the archive, unpacks it into a staging directory beside workDir
// while hashing it, and moves the tree into place only once the bytes read are exactly ref's.
// Unpacking while downloading keeps one copy of the archive out of the instance's memory (a
// Cloud Run file system is memory); what an archive that turns out corrupt left is removed with
// the staging directory, and Unpack keeps it inside that directory in the meantime. workDir must
// not exist or be empty. A failed download (the network, a 5xx) is tried again a few times; a
// refused one (an expired URL, another digest) is not.
func Fetch(ctx context.Context, hc *http.Client, url string, ref blob.Ref, workDir string) error {
	if _, err := ref.Hex(); err != nil {
		return err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	parent := filepath.Dir(workDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("environment archive: %w", err)
	}
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		var retry bool
		if retry, err = fetchOnce(ctx, hc, url, ref, workDir); err == nil || !retry {
			return err
		}
	}
	return err
}

// fetchOnce is one try of Fetch; retry says whether another may succeed.
func fetchOnce(ctx context.Context, hc *http.Client, url string, ref blob.Ref, workDir string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, fmt.Errorf("environment archive: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL is signed: its query is a credential, and no log needs it.
		return true, fmt.Errorf("download the environment archive: %s", strings.ReplaceAll(err.Error(), url, redact(url)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode >= 500, fmt.Errorf("download the environment archive %s: %s: %s", redact(url), resp.Status, strings.TrimSpace(string(snippet)))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != ref.Size {
		return false, fmt.Errorf("environment archive %s: %d bytes offered, %d expected: %w", ref.Digest, resp.ContentLength, ref.Size, blob.ErrCorrupt)
	}
	staging, err := os.MkdirTemp(filepath.Dir(workDir), ".codeset-unpack-")
	if err != nil {
		return false, fmt.Errorf("environment archive: %w", err)
	}
	defer os.RemoveAll(staging) // empty but for a failure's leftovers once the tree moved out
	body := blob.Checked(resp.Body, ref)
	if err := Unpack(body, ref.Digest, staging); err != nil {
		if errors.Is(err, blob.ErrCorrupt) {
			return false, fmt.Errorf("environment archive %s: %w", ref.Digest, blob.ErrCorrupt)
		}
		return true, err
	}
	// The tar ends before its gzip stream and any padding do: the digest covers every byte.
	if _, err := io.Copy(io.Discard, body); err != nil {
		if errors.Is(err, blob.ErrCorrupt) {
			return false, fmt.Errorf("environment archive %s: %w", ref.Digest, err)
		}
		return true, fmt.Errorf("download the environment archive: %w", err)
	}
	if err := os.Remove(workDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("environment archive: the work dir %s must be empty: %w", workDir, err)
	}
	if err := os.Rename(WorkTree(staging), workDir); err != nil {
		return false, fmt.Errorf("environment archive: %w", err)
	}
	return false, nil
}

// redact is url without its query (the signature).
func redact(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?…"
	}
	return url
}
