package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/httpapi"
)

// GetPricingInfo answers the prices in force: they come from configuration and are written into
// the events they apply to (a session keeps the price it was requested at).
func GetPricingInfo(a *app.App, w http.ResponseWriter, r *http.Request) error {
	c := a.Config
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"cost_per_minute_cents": c.CostPerMinuteCents,
		"cost_per_hour_cents":   c.CostPerMinuteCents * 60,
		"agent_job_cost_cents":  c.AgentJobCostCents,
		"minimum_deposit_cents": minimumDeposit(c.MinimumDepositCents),
		"currency":              "usd",
		// Billed per second from ready to end, rounded up to the cent once per session.
		"billing_granularity": "second",
		"rounding":            "ceil(billable_seconds * cost_per_minute_cents / 60), once per session",
		"payments_enabled":    c.StripeSecretKey != "",
	})
	return nil
}

// minimumDeposit is the configured minimum, never below the spec's floor of 100 cents.
func minimumDeposit(configured int64) int64 { return max(configured, 100) }
