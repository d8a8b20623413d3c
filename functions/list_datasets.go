package functions

import (
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// datasetView is the spec's Dataset.
type datasetView struct {
	Name        string     `json:"name"`
	Description *string    `json:"description"`
	SampleCount int        `json:"sample_count"`
	CreatedAt   *time.Time `json:"created_at"`
}

// ListDatasets answers GET /datasets: every dataset by name, with its number of samples.
func ListDatasets(a *app.App, w http.ResponseWriter, r *http.Request) error {
	docs, err := projections.Datasets(r.Context(), a.Docs)
	if err != nil {
		return err
	}
	out := make([]datasetView, 0, len(docs))
	for _, d := range docs {
		v := datasetView{Name: d.Name, SampleCount: d.SampleCount}
		if d.Description != "" {
			v.Description = &d.Description
		}
		if !d.CreatedAt.IsZero() {
			v.CreatedAt = &d.CreatedAt
		}
		out = append(out, v)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
