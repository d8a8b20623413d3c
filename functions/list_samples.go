package functions

import (
	"math"
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// MaxPageSize is the largest page_size GET /samples accepts (the spec's maximum).
const MaxPageSize = 100

// sampleListView is the spec's SampleListResponse.
type sampleListView struct {
	Samples    []projections.SampleView `json:"samples"`
	TotalCount int                      `json:"total_count"`
	Page       int                      `json:"page"`
	PageSize   int                      `json:"page_size"`
	HasMore    bool                     `json:"has_more"`
}

// ListSamples answers GET /samples: the latest version of every sample, ordered by dataset and
// sample id, filtered by dataset and by a case-insensitive substring of instance_id. Without
// page and page_size it returns every match; with either, one page (page defaults to 1,
// page_size to the maximum, 100).
func ListSamples(a *app.App, w http.ResponseWriter, r *http.Request) error {
	page, pageGiven, err := httpapi.IntParam(r, "page", 1, math.MaxInt32)
	if err != nil {
		return err
	}
	size, sizeGiven, err := httpapi.IntParam(r, "page_size", 1, MaxPageSize)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	filter := projections.SampleFilter{Dataset: q.Get("dataset"), Search: q.Get("search")}
	offset, limit := 0, -1
	if pageGiven || sizeGiven {
		if !pageGiven {
			page = 1
		}
		if !sizeGiven {
			size = MaxPageSize
		}
		offset, limit = (page-1)*size, size
	}
	found, total, err := a.Samples.Find(r.Context(), a.Docs, filter, offset, limit)
	if err != nil {
		return err
	}
	out := sampleListView{Samples: make([]projections.SampleView, len(found)), TotalCount: total, Page: 1, PageSize: len(found)}
	for i, s := range found {
		out.Samples[i] = s.View()
	}
	if limit > 0 {
		out.Page, out.PageSize = page, size
		out.HasMore = offset+len(found) < total
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
