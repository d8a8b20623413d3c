package functions

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/sandbox"
)

// BenchmarkVerificationOverhead measures what verification adds to the verifier's own run time,
// on the embedded default with a real local sandbox and the demo's fastest verifier (sh-semver-1,
// a bash script): the job's completed_at - created_at minus the verifier's
// execution_duration_seconds (server side), and the same seen by a client polling GET every
// millisecond (from POST to the completed answer). Reported: p50 and p95 of both, in ms.
//
//	go test ./functions/ -run '^$' -bench VerificationOverhead -benchtime 50x
//
// Two cases: the demo's verifier as it is, and the same sample with a verifier that writes its
// report at once.
func BenchmarkVerificationOverhead(b *testing.B) {
	env := newVerifyEnv(b, nil)
	env.credit("bench")
	// The demo's verifier as it is, and one that writes its report at once (the agent's share of
	// the sandbox's CPU then does not compete with the verifier's own processes).
	env.variant(b, "sh-semver-1", "sh-semver-instant",
		`mkdir -p reports; printf '<testsuites><testsuite><testcase classname="test_semver" name="test_equal_versions"/></testsuite></testsuites>' > reports/junit.xml`)
	for _, c := range []struct{ name, sample string }{{"demo-verifier", "sh-semver-1"}, {"instant-verifier", "sh-semver-instant"}} {
		b.Run(c.name, func(b *testing.B) {
			e := *env
			e.t = b
			sid := e.openSession("bench", c.sample)
			defer e.call("bench", "DELETE", "/sessions/"+sid, nil)
			e.verify("bench", sid) // warm: the first run pays for cold caches
			var server, client, verifier []float64
			b.ResetTimer()
			for range b.N {
				posted := time.Now()
				job := e.startVerify("bench", sid)
				var j jobView
				for {
					e.expect(http.StatusOK, "bench", "GET", "/sessions/"+sid+"/verify/"+job, nil, &j)
					if j.Status == events.JobCompleted || j.Status == events.JobError || j.Status == events.JobCancelled {
						break
					}
					time.Sleep(time.Millisecond)
				}
				seen := time.Since(posted)
				if j.Status != events.JobCompleted {
					b.Fatalf("job %s: %+v", j.Status, j.Error)
				}
				run := j.Result.ExecutionDurationSeconds * 1000
				verifier = append(verifier, run)
				server = append(server, float64(j.CompletedAt.Sub(j.CreatedAt).Microseconds())/1000-run)
				client = append(client, float64(seen.Microseconds())/1000-run)
			}
			b.StopTimer()
			// The sandbox's share: the same verification asked of the runtime directly (read the
			// session's changes, start the oracle sandbox, apply the changes and the test patch,
			// run, collect the report), less the run.
			s, _, err := loadSession(context.Background(), e.a, sid)
			if err != nil {
				b.Fatal(err)
			}
			sample, err := projections.SampleVersion(context.Background(), e.a.Docs, s.Dataset, s.SampleID, s.SampleVersion)
			if err != nil {
				b.Fatal(err)
			}
			var agent []float64
			for range min(b.N, 40) {
				t0 := time.Now()
				res, err := sandbox.Verify(context.Background(), e.a.Sandboxes, e.a.SandboxInfo(s.SessionID, s.Sandbox), sandboxSpec(e.a, s, s.Env), sandbox.VerifyRequest{
					TestPatch: sample.TestPatch, Command: s.Env.VerifierCommand, ReportPaths: s.Env.ReportPaths,
					Protected: s.Env.ProtectedPaths, Timeout: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				agent = append(agent, float64((time.Since(t0)-res.Duration).Microseconds())/1000)
			}
			b.ReportMetric(percentile(agent, 50), "p50-sandbox-share-ms")
			b.ReportMetric(percentile(server, 50), "p50-overhead-ms")
			b.ReportMetric(percentile(server, 95), "p95-overhead-ms")
			b.ReportMetric(percentile(client, 50), "p50-client-overhead-ms")
			b.ReportMetric(percentile(client, 95), "p95-client-overhead-ms")
			b.ReportMetric(percentile(verifier, 50), "p50-verifier-ms")
		})
	}
}

func percentile(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
