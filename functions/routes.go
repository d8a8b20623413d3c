package functions

import (
	"net/http"

	"github.com/codeset/codeset/shared/httpapi"
)

// Auth says what a route asks of the caller.
type Auth int

const (
	Public Auth = iota // anyone
	Bearer             // a JWT access token or an API key
)

// Route is one operation of the API: the single table the local server, the Cloud Functions
// registration, the load-balancer URL map and the Terraform checks all read.
type Route struct {
	Method  string
	Path    string // as in the spec, relative to /api/v1
	Name    string // the Cloud Function's name (its entry point)
	Auth    Auth
	Handler Handler
}

// Prefix is where the API is served.
const Prefix = "/api/v1"

// Routes is every operation of spec/codeset-openapi.json, in the spec's order.
var Routes = []Route{
	{http.MethodGet, "/health", "HealthCheck", Public, HealthCheck},
	{http.MethodPost, "/auth/github", "GithubOauth", Public, GithubOauth},
	{http.MethodGet, "/repos", "ListRepos", Bearer, ListRepos},
	{http.MethodPost, "/auth/refresh", "RefreshToken", Public, RefreshToken},
	{http.MethodGet, "/users/me", "GetCurrentUser", Bearer, GetCurrentUser},
	{http.MethodPost, "/users/me/accept-terms", "AcceptTerms", Bearer, AcceptTerms},
	{http.MethodPost, "/users/me/api-keys", "CreateApiKey", Bearer, CreateApiKey},
	{http.MethodDelete, "/users/me/api-keys", "RevokeApiKey", Bearer, RevokeApiKey},
	{http.MethodGet, "/datasets", "ListDatasets", Public, ListDatasets},
	{http.MethodGet, "/samples", "ListSamples", Public, ListSamples},
	{http.MethodGet, "/samples/{dataset}/{sample_id}/download", "DownloadSample", Bearer, DownloadSample},
	{http.MethodGet, "/sessions", "ListSessions", Bearer, ListSessions},
	{http.MethodPost, "/sessions", "CreateSession", Bearer, CreateSession},
	{http.MethodGet, "/sessions/{session_id}", "GetSession", Bearer, GetSession},
	{http.MethodDelete, "/sessions/{session_id}", "CloseSession", Bearer, CloseSession},
	{http.MethodPost, "/sessions/{session_id}/exec", "ExecuteCommand", Bearer, ExecuteCommand},
	{http.MethodGet, "/sessions/{session_id}/interactions/{interaction_id}", "GetInteraction", Bearer, GetInteraction},
	{http.MethodPost, "/sessions/{session_id}/str_replace", "StringReplace", Bearer, StringReplace},
	{http.MethodPost, "/sessions/{session_id}/upload", "UploadFile", Bearer, UploadFile},
	{http.MethodPost, "/sessions/{session_id}/verify", "StartVerification", Bearer, StartVerification},
	{http.MethodGet, "/sessions/{session_id}/verify/{job_id}", "GetVerificationJob", Bearer, GetVerificationJob},
	{http.MethodGet, "/billing/balance", "GetUserBalance", Bearer, GetUserBalance},
	{http.MethodGet, "/billing/pricing", "GetPricingInfo", Public, GetPricingInfo},
	{http.MethodPost, "/billing/deposit", "DepositMoney", Bearer, DepositMoney},
	{http.MethodPost, "/billing/webhook", "StripeWebhook", Public, StripeWebhook},
	{http.MethodGet, "/billing/usage", "GetUsageHistory", Bearer, GetUsageHistory},
	{http.MethodGet, "/agent-jobs", "ListAgentJobs", Bearer, notImplemented},
	{http.MethodPost, "/agent-jobs", "CreateAgentJob", Bearer, notImplemented},
	{http.MethodGet, "/agent-jobs/{job_id}", "GetAgentJob", Bearer, notImplemented},
	{http.MethodPost, "/agent-jobs/{job_id}/completion", "AgentJobCompletion", Public, notImplemented},
	{http.MethodGet, "/agent-jobs/{job_id}/result", "GetAgentJobResult", Bearer, notImplemented},
}

// notImplemented answers the operations whose issue has not landed yet.
func notImplemented(a *App, w http.ResponseWriter, r *http.Request) error {
	return httpapi.Errorf(http.StatusNotImplemented, "not implemented yet")
}
