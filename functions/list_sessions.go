package functions

import (
	"fmt"
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// listSessionsPage is how many sessions GET /sessions returns: the spec takes no paging
// parameters, so it answers the newest ones and says in has_more that there are older ones.
const listSessionsPage = 100

// ListSessions answers GET /sessions: the caller's sessions, newest first.
func ListSessions(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	docs, next, err := projections.List[projections.SessionDoc](ctx, a.Docs, projections.SessionCollection, projections.Query{
		Where:   []projections.Filter{{Field: "user_id", Value: app.Caller(ctx).UserID}},
		OrderBy: []projections.Order{{Field: "requested_us", Desc: true}},
		Limit:   listSessionsPage,
	})
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	now := a.Clock.Now()
	out := make([]sessionView, 0, len(docs))
	for _, d := range docs {
		out = append(out, viewSession(d, now))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out, "total_count": len(out), "has_more": next != ""})
	return nil
}
