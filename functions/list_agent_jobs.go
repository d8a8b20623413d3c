package functions

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// ListAgentJobs answers GET /agent-jobs?limit&cursor: the caller's jobs, newest first, a page
// at a time; next_cursor (opaque) asks for the next page and is null on the last.
func ListAgentJobs(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	limit, ok, err := httpapi.IntParam(r, "limit", 1, 100)
	if err != nil {
		return err
	}
	if !ok {
		limit = 20
	}
	docs, next, err := projections.List[projections.AgentJobDoc](ctx, a.Docs, projections.AgentJobCollection, projections.Query{
		Where:   []projections.Filter{{Field: "user_id", Value: app.Caller(ctx).UserID}, {Field: "listed", Value: true}},
		OrderBy: []projections.Order{{Field: "created_us", Desc: true}},
		Limit:   limit,
		Cursor:  r.URL.Query().Get("cursor"),
	})
	if errors.Is(err, projections.ErrBadCursor) {
		return httpapi.Invalid("value_error", "cursor is not one this listing handed out", "query", "cursor")
	}
	if err != nil {
		return fmt.Errorf("list agent jobs: %w", err)
	}
	jobs := make([]agentJobView, 0, len(docs))
	for _, d := range docs {
		jobs = append(jobs, viewAgentJob(d))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "next_cursor": nonEmpty(next), "has_more": next != ""})
	return nil
}
