// Package functions is the HTTP and event edge of the system: one file per endpoint, per event
// consumer and per scheduled job, and the tables that wire them (routes.go, wiring.go). It
// translates requests and events into calls on the domain (events/) and the read models
// (projections/), and writes only through app.Update.
package functions

import (
	"context"
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/config"
)

// Wiring is everything an App runs, in tables: the routes (routes.go), the pages beside them,
// the consumers of the bus, the start-up tasks and the scheduled jobs. `codeset serve`, the
// Cloud Functions registration (functions.go at the root) and the push subscriptions all read
// it. Each call builds fresh process managers, so that every App keeps its own in-flight state.
func Wiring() app.Wiring {
	exec, prov := &executor{}, &provisioner{}
	return app.Wiring{
		Routes: Routes,
		Pages: map[string]http.HandlerFunc{
			"GET " + app.Prefix + "/openapi.json": serveSpec,
			"GET /docs":                           serveDocs,
		},
		// In this order the inline projectors run after each write.
		Consumers: []app.Consumer{
			{Name: "BalanceProjector", Wants: projections.WantsBalance, Handle: ProjectBalance, Inline: true},
			{Name: "ProjectCatalog", Wants: wantsCatalog, Handle: projectCatalog, Inline: true, InlineBatch: projectCatalogBatch},
			{Name: "Executor", Wants: wantsExec, Handle: exec.execute, SelfVersioned: true},
			{Name: "ProjectInteractions", Wants: projections.IsInteractionEvent, Handle: projectInteraction, Inline: true, SelfVersioned: true},
			{Name: "Provisioner", Wants: wantsSessionRequest, Handle: prov.provision},
			// Not a projector, but inline all the same, and before the session projector: once a
			// client sees a session ended (DELETE's answer, its status) its slot is free. Its
			// decision is idempotent per session, so it keeps no checkpoint.
			{Name: "SessionSlotReleaser", Wants: wantsSessionEnd, Handle: releaseSessionSlot, Inline: true, SelfVersioned: true},
			{Name: "ProjectSessions", Wants: projections.IsSessionEvent, Handle: projectSession, Inline: true, SelfVersioned: true},
			{Name: "UserProjector", Wants: wantsUser, Handle: projectUser, Inline: true},
			{Name: "ProjectVerifications", Wants: projections.IsVerificationEvent, Handle: projectVerification, Inline: true},
			{Name: "Verifier", Wants: wantsVerifier, Handle: handleVerifier},
			{Name: "ProjectAgentJobs", Wants: projections.IsAgentJobEvent, Handle: projectAgentJob, Inline: true},
			// Inline so that a failed job's answer and the caller's balance agree at once; the
			// bus delivers it again after a crash, and the account pays a job's refund once.
			{Name: "AgentJobRefunder", Wants: wantsAgentJobFailure, Handle: refundAgentJob, Inline: true},
			{Name: "AgentJobLauncher", Wants: wantsAgentJobAccepted, Handle: launchAgentJob},
		},
		// The demo goes first (a second or so, after /health answers), so that by the time the
		// bootstrap key is written a user who reads it finds the demo listed.
		Startup: []app.Task{
			{Name: "demo", Run: demoTask},
			{Name: "bootstrap", Run: bootstrap},
			{Name: "sandbox-recovery", Run: RecoverSandboxes},
			{Name: "verification-recovery", Run: recoverVerifications},
		},
		Jobs: []app.Job{
			{Name: "Reaper", Every: reaperEvery, Run: reap},
			{Name: "SpentBalanceReaper", Every: reaperEvery, Run: reapSpentBalances},
			{Name: "LeakedSandboxReaper", Every: leakedEvery, Run: reapLeakedSandboxes},
			{Name: "StuckVerificationReaper", Every: stuckEvery, Run: reapStuckVerifications},
			{Name: "AgentJobReaper", Every: agentJobReaperEvery, Run: reapAgentJobs},
			{Name: "OutboxRelay", Every: relayEvery, Run: relay},
		},
		AgentJobReport: reportAgentJob,
	}
}

// Open opens the App of cfg running Wiring().
func Open(ctx context.Context, cfg config.Config) (*app.App, error) {
	return app.Open(ctx, cfg, Wiring())
}
