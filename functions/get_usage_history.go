package functions

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// usageTransaction is the spec's UsageTransaction.
type usageTransaction struct {
	ID              string    `json:"id"`
	Type            string    `json:"type"`
	AmountCents     int64     `json:"amount_cents"`
	Description     string    `json:"description"`
	CreatedAt       time.Time `json:"created_at"`
	SessionID       *string   `json:"session_id"`
	DurationMinutes *float64  `json:"duration_minutes"`
	JobID           *string   `json:"job_id"`
}

// typeFilters maps each accepted transaction_types value to the ledger types it selects: the
// spec's transaction types, plus "usage" (session usage) and "charge" (agent-job charges), the
// names its parameter documents.
var typeFilters = map[string][]string{
	projections.TxDeposit:        {projections.TxDeposit},
	projections.TxRefund:         {projections.TxRefund},
	projections.TxSessionUsage:   {projections.TxSessionUsage},
	projections.TxAgentJobUsage:  {projections.TxAgentJobUsage},
	projections.TxAgentJobRefund: {projections.TxAgentJobRefund},
	"usage":                      {projections.TxSessionUsage},
	"charge":                     {projections.TxAgentJobUsage},
}

// GetUsageHistory answers the caller's transactions, newest first, a page at a time, with the
// balance totals, a summary of the selected transactions and the pagination.
func GetUsageHistory(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	userID := app.Caller(ctx).UserID
	page, _, err := httpapi.IntParam(r, "page", 1, 1<<31-1)
	if err != nil {
		return err
	}
	page = max(page, 1)
	limit, ok, err := httpapi.IntParam(r, "limit", 1, 100)
	if err != nil {
		return err
	}
	if !ok {
		limit = 25
	}
	maxItems, hasMax, err := httpapi.IntParam(r, "max_items", 1, 10000)
	if err != nil {
		return err
	}
	start, hasStart, err := dateParam(r, "start_date")
	if err != nil {
		return err
	}
	end, hasEnd, err := dateParam(r, "end_date")
	if err != nil {
		return err
	}
	types := map[string]bool{}
	for _, v := range r.URL.Query()["transaction_types"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			sel, ok := typeFilters[t]
			if !ok {
				return httpapi.Invalid("enum", "Input should be 'deposit', 'usage', 'charge', 'refund', 'session_usage', 'agent_job_usage' or 'agent_job_refund'", "query", "transaction_types")
			}
			for _, s := range sel {
				types[s] = true
			}
		}
	}
	dated := hasStart || hasEnd
	if dated {
		hasMax = false // the spec: max_items is ignored when a date is given
	}

	b, err := balanceOf(a, r, userID)
	if err != nil {
		return err
	}
	var (
		txs     []projections.LedgerEntry
		total   int
		summary projections.Summary
	)
	if !dated && !hasMax && len(types) == 0 {
		// The common case reads one page from the index and the summary from the balance.
		summary, total = b.Summary, int(b.Summary.Transactions)
		if (page-1)*limit < total {
			// The store skips the earlier pages itself: page 100 costs what page 1 does.
			q := newestFirst(userID, limit)
			q.Offset = (page - 1) * limit
			if txs, _, err = projections.List[projections.LedgerEntry](ctx, a.Docs, projections.LedgerCollection, q); err != nil {
				return fmt.Errorf("usage of %s: %w", userID, err)
			}
		}
	} else {
		// Newest first, so a date range stops reading at its start and max_items at its count.
		var sel []projections.LedgerEntry
		loaded := 0
		err := eachNewestFirst(r, a, userID, func(e projections.LedgerEntry) bool {
			if hasMax && loaded == maxItems || hasStart && e.CreatedAt.Before(start) {
				return false
			}
			loaded++
			if len(types) > 0 && !types[e.Type] || hasEnd && !e.CreatedAt.Before(end.AddDate(0, 0, 1)) {
				return true
			}
			sel = append(sel, e)
			summary.Add(e)
			return true
		})
		if err != nil {
			return fmt.Errorf("usage of %s: %w", userID, err)
		}
		total = len(sel)
		txs = window(sel, page, limit)
	}

	out := make([]usageTransaction, 0, len(txs))
	for _, e := range txs {
		t := usageTransaction{ID: e.ID, Type: e.Type, AmountCents: e.AmountCents, Description: e.Description,
			CreatedAt: e.CreatedAt, DurationMinutes: e.DurationMinutes}
		if e.SessionID != "" {
			t.SessionID = &e.SessionID
		}
		if e.JobID != "" {
			t.JobID = &e.JobID
		}
		out = append(out, t)
	}
	pages := (total + limit - 1) / limit
	avg := 0.0
	if summary.TotalSessions > 0 {
		avg = float64(summary.TotalSessionCostCents) / float64(summary.TotalSessions)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"current_balance_cents": b.BalanceCents,
		"total_deposits_cents":  b.TotalDepositedCents,
		"total_usage_cents":     b.TotalSpentCents,
		"transactions":          out,
		"summary": map[string]any{
			"transaction_count":            summary.Transactions,
			"total_sessions":               summary.TotalSessions,
			"total_session_minutes":        summary.TotalSessionSeconds / 60,
			"total_session_cost_cents":     summary.TotalSessionCostCents,
			"average_session_cost_cents":   avg,
			"total_agent_jobs":             summary.TotalAgentJobs,
			"total_agent_job_cost_cents":   summary.AgentJobCostCents,
			"total_agent_job_refund_cents": summary.AgentJobRefundCents,
			"total_deposits_cents":         summary.DepositCents,
			"total_credits_cents":          summary.GrantCents,
			"total_refunds_cents":          summary.RefundCents,
		},
		"pagination": map[string]any{
			"page":        page,
			"limit":       limit,
			"total_items": total,
			"total_pages": pages,
			"has_more":    page*limit < total,
		},
	})
	return nil
}

func newestFirst(userID string, n int) projections.Query {
	return projections.Query{Where: []projections.Filter{{Field: "user_id", Value: userID}},
		OrderBy: []projections.Order{{Field: "at_us", Desc: true}}, Limit: n}
}

// eachNewestFirst calls fn on userID's ledger entries, newest first, until it returns false.
func eachNewestFirst(r *http.Request, a *app.App, userID string, fn func(projections.LedgerEntry) bool) error {
	q := newestFirst(userID, 500)
	for {
		page, next, err := projections.List[projections.LedgerEntry](r.Context(), a.Docs, projections.LedgerCollection, q)
		if err != nil {
			return err
		}
		for _, e := range page {
			if !fn(e) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		q.Cursor = next
	}
}

// window is page `page` (1-based) of `limit` items of es.
func window(es []projections.LedgerEntry, page, limit int) []projections.LedgerEntry {
	from := (page - 1) * limit
	if from >= len(es) {
		return nil
	}
	return es[from:min(from+limit, len(es))]
}

// dateParam reads an optional UTC date (YYYY-MM-DD) query parameter.
func dateParam(r *http.Request, name string) (time.Time, bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, false, httpapi.Invalid("date_from_datetime_parsing", "Input should be a valid date in the format YYYY-MM-DD", "query", name)
	}
	return t, true, nil
}
