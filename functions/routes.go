package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
)

// Routes is every operation of spec/codeset-openapi.json, in the spec's order, then this
// server's documented extensions.
var Routes = []app.Route{
	route(http.MethodGet, "/health", "HealthCheck", app.Public, HealthCheck),
	route(http.MethodPost, "/auth/github", "GithubOauth", app.Public, GithubOauth),
	route(http.MethodGet, "/repos", "ListRepos", app.Bearer, ListRepos),
	route(http.MethodPost, "/auth/refresh", "RefreshToken", app.Public, RefreshToken),
	route(http.MethodGet, "/users/me", "GetCurrentUser", app.Bearer, GetCurrentUser),
	route(http.MethodPost, "/users/me/accept-terms", "AcceptTerms", app.Bearer, AcceptTerms),
	route(http.MethodPost, "/users/me/api-keys", "CreateApiKey", app.Bearer, CreateApiKey),
	route(http.MethodDelete, "/users/me/api-keys", "RevokeApiKey", app.Bearer, RevokeApiKey),
	route(http.MethodGet, "/datasets", "ListDatasets", app.Public, ListDatasets),
	route(http.MethodGet, "/samples", "ListSamples", app.Public, ListSamples),
	route(http.MethodGet, "/samples/{dataset}/{sample_id}/download", "DownloadSample", app.Bearer, DownloadSample),
	route(http.MethodGet, "/sessions", "ListSessions", app.Bearer, ListSessions),
	route(http.MethodPost, "/sessions", "CreateSession", app.Bearer, CreateSession),
	route(http.MethodGet, "/sessions/{session_id}", "GetSession", app.Bearer, GetSession),
	route(http.MethodDelete, "/sessions/{session_id}", "CloseSession", app.Bearer, CloseSession),
	route(http.MethodPost, "/sessions/{session_id}/exec", "ExecuteCommand", app.Bearer, ExecuteCommand),
	route(http.MethodGet, "/sessions/{session_id}/interactions/{interaction_id}", "GetInteraction", app.Bearer, GetInteraction),
	route(http.MethodPost, "/sessions/{session_id}/str_replace", "StringReplace", app.Bearer, StringReplace),
	route(http.MethodPost, "/sessions/{session_id}/upload", "UploadFile", app.Bearer, UploadFile),
	route(http.MethodPost, "/sessions/{session_id}/verify", "StartVerification", app.Bearer, StartVerification),
	route(http.MethodGet, "/sessions/{session_id}/verify/{job_id}", "GetVerificationJob", app.Bearer, GetVerificationJob),
	route(http.MethodGet, "/billing/balance", "GetUserBalance", app.Bearer, GetUserBalance),
	route(http.MethodGet, "/billing/pricing", "GetPricingInfo", app.Public, GetPricingInfo),
	route(http.MethodPost, "/billing/deposit", "DepositMoney", app.Bearer, DepositMoney),
	route(http.MethodPost, "/billing/webhook", "StripeWebhook", app.Public, StripeWebhook),
	route(http.MethodGet, "/billing/usage", "GetUsageHistory", app.Bearer, GetUsageHistory),
	route(http.MethodGet, "/agent-jobs", "ListAgentJobs", app.Bearer, ListAgentJobs),
	route(http.MethodPost, "/agent-jobs", "CreateAgentJob", app.Bearer, CreateAgentJob),
	route(http.MethodGet, "/agent-jobs/{job_id}", "GetAgentJob", app.Bearer, GetAgentJob),
	route(http.MethodPost, "/agent-jobs/{job_id}/completion", "AgentJobCompletion", app.Public, AgentJobCompletion),
	route(http.MethodGet, "/agent-jobs/{job_id}/result", "GetAgentJobResult", app.Bearer, GetAgentJobResult),
	// Extensions of this server, documented in openapi.json ("x-codeset-extension").
	route(http.MethodPost, "/agent-jobs/{job_id}/progress", "AgentJobProgress", app.Public, AgentJobProgress),
}

// route is one row of the table.
func route(method, path, name string, auth app.Auth, h app.Handler) app.Route {
	return app.Route{Method: method, Path: path, Name: name, Auth: auth, Handler: h}
}
