package functions

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// downloadView is a downloaded sample: the spec's Sample plus the environment it runs in (less
// the archive's location, which is this server's business).
type downloadView struct {
	projections.SampleView
	Environment events.Environment `json:"environment"`
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DownloadSample answers GET /samples/{dataset}/{sample_id}/download[?version=N]: the sample
// (its latest version unless N is given) as gzipped JSON.
func DownloadSample(a *app.App, w http.ResponseWriter, r *http.Request) error {
	dataset, sampleID := r.PathValue("dataset"), r.PathValue("sample_id")
	version, given, err := httpapi.IntParam(r, "version", math.MinInt32, math.MaxInt32)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var s projections.SampleDoc
	if given && version < 1 {
		// Versions start at 1; still say which of dataset, sample or version is unknown.
		_, err = projections.Sample(ctx, a.Docs, dataset, sampleID)
		if err == nil {
			err = projections.ErrUnknownVersion
		}
	} else {
		s, err = projections.SampleVersion(ctx, a.Docs, dataset, sampleID, version)
	}
	switch {
	case errors.Is(err, projections.ErrUnknownDataset):
		return httpapi.NotFound(fmt.Sprintf("dataset %q", dataset))
	case errors.Is(err, projections.ErrUnknownSample):
		return httpapi.NotFound(fmt.Sprintf("sample %q in dataset %q", sampleID, dataset))
	case errors.Is(err, projections.ErrUnknownVersion):
		return httpapi.NotFound(fmt.Sprintf("version %d of sample %q in dataset %q", version, sampleID, dataset))
	case err != nil:
		return err
	}
	if version > 0 {
		// The stored flag can lag while a newer version is being projected: ask for the latest.
		latest, err := projections.Sample(ctx, a.Docs, dataset, sampleID)
		if err != nil {
			return err
		}
		s.Latest = latest.Version == s.Version
	} else {
		s.Latest = true
	}
	env := s.Environment
	env.Archive, env.ArchiveRef = "", nil // where the server keeps it: nothing a client can use
	raw, err := json.Marshal(downloadView{SampleView: s.View(), Environment: env})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(raw)
	if err := gz.Close(); err != nil {
		return err
	}
	name := unsafeFileChars.ReplaceAllString(fmt.Sprintf("%s__%s__v%d", dataset, sampleID, s.Version), "_") + ".json.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	return nil
}
