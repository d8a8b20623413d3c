package functions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/clock"
	"github.com/codeset/codeset/shared/config"
	"github.com/codeset/codeset/shared/ids"
	"github.com/codeset/codeset/shared/sandbox"
)

// The GCP backend as Cloud Functions run it, on the emulators: no background loop in the
// process (no bus, no ticker, no startup task), Pub/Sub pushing every event to the consumers'
// endpoints, and the scheduled jobs called over HTTP as Cloud Scheduler calls them.

// callJob makes one pass of scheduled job name through its HTTP entry point.
func callJob(t *testing.T, env *verifyEnv, name string) string {
	t.Helper()
	resp, err := http.Post(env.url+app.JobPath(name), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", app.JobPath(name), resp.StatusCode, body)
	}
	return string(body)
}

// grantCents credits user with cents.
func grantCents(t *testing.T, a *app.App, user string, cents int64) {
	t.Helper()
	ev, err := events.New(ids.New(), user, events.CreditGranted, a.Clock.Now(), events.CreditGrantedData{CreditID: ids.New(), AmountCents: cents, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record(context.Background(), a, events.AccountStream(user), events.Any, ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		return RequirePositiveBalance(context.Background(), a, user) == nil, "the credit never reached the balance"
	})
}

func sessionStatus(t *testing.T, env *verifyEnv, user, sid string) string {
	t.Helper()
	var s struct {
		Status string `json:"status"`
	}
	env.expect(http.StatusOK, user, "GET", "/sessions/"+sid, nil, &s)
	return s.Status
}

// TestGCPDeploymentScheduledWork: on a clock the test moves, a spent balance terminates a
// running session, a session past its expiry is ended and billed once by two overlapping calls
// of the reaper, and a sandbox whose session does not exist is stopped: each by its scheduled
// entry point, called over HTTP.
func TestGCPDeploymentScheduledWork(t *testing.T) {
	t.Parallel()
	env := newVerifyEnvOn(t, "gcp", func(c *config.Config) { c.Scheduler = "external" })
	if env.a.ExternalScheduler() != true {
		t.Fatal("the App ticks its own jobs")
	}
	fake := clock.NewFake(time.Now())
	env.a.Clock = fake
	env.credit("alice")
	grantCents(t, env.a, "bob", 50) // five minutes at 10 cents
	alice := env.openSession("alice", "sh-semver-1")
	bob := env.openSession("bob", "sh-semver-1")

	// Bob's balance runs out: the spent-balance reaper ends his session, not Alice's.
	fake.Advance(6 * time.Minute)
	callJob(t, env, "SpentBalanceReaper")
	eventually(t, 30*time.Second, func() (bool, string) {
		st := sessionStatus(t, env, "bob", bob)
		return st == events.StatusTerminated, "bob's session is " + st
	})
	if st := sessionStatus(t, env, "alice", alice); st != events.StatusReady {
		t.Fatalf("alice's session is %s", st)
	}

	// Alice's session expires (ttl 30 minutes): two overlapping calls end and bill it once.
	fake.Advance(25 * time.Minute)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { callJob(t, env, "Reaper") })
	}
	wg.Wait()
	eventually(t, 30*time.Second, func() (bool, string) {
		st := sessionStatus(t, env, "alice", alice)
		return st == events.StatusTerminated, "alice's session is " + st
	})
	evs, err := env.a.Events.Load(context.Background(), events.SessionStream(alice), 1)
	if err != nil {
		t.Fatal(err)
	}
	ends := 0
	for _, e := range evs {
		if e.Type == events.SessionEnded {
			ends++
		}
	}
	if ends != 1 {
		t.Fatalf("alice's session ended %d times", ends)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		var usage struct {
			Transactions []struct {
				SessionID string `json:"session_id"`
				Type      string `json:"transaction_type"`
			} `json:"transactions"`
		}
		env.expect(http.StatusOK, "alice", "GET", "/billing/usage?limit=100", nil, &usage)
		n := 0
		for _, tx := range usage.Transactions {
			if tx.SessionID == alice {
				n++
			}
		}
		return n == 1, fmt.Sprintf("alice's session is billed %d times", n)
	})

	// A sandbox nobody's session holds (a stop that failed, a start whose session is gone).
	ctx := context.Background()
	leaked, err := env.rt.Start(ctx, sandbox.Spec{SessionID: "sess_leaked", UserID: "alice", Env: sandbox.Environment{WorkDir: "/workspace/repo"}, Blobs: env.a.Blobs})
	if err != nil {
		t.Fatal(err)
	}
	if !env.rt.Alive(ctx, leaked) {
		t.Fatal("the leaked sandbox never answered")
	}
	if out := callJob(t, env, "LeakedSandboxReaper"); !strings.Contains(out, "sess_leaked") {
		t.Fatalf("the sweep answered %s", out)
	}
	if env.rt.Alive(ctx, leaked) {
		t.Fatal("the leaked sandbox still answers")
	}
}

// TestGCPDeploymentLongWork: a command that outlives the push subscription's ack deadline (10 s
// here, 600 s at most on GCP) completes once, its wait handed from push to push; 1 MiB of
// stdout and of stderr come back whole; a verification is cancelled by another instance of the
// deployment, which cannot reach the oracle, and the oracle stops.
func TestGCPDeploymentLongWork(t *testing.T) {
	t.Parallel()
	env := newVerifyEnvOn(t, "gcp", func(c *config.Config) {
		c.Scheduler, c.AckDeadline, c.DeliveryWait = "external", 10*time.Second, 3*time.Second
	})
	env.credit("alice")
	sid := env.openSession("alice", "go-roman-1")
	defer env.call("alice", "DELETE", "/sessions/"+sid, nil)
	ctx := context.Background()

	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	env.expect(http.StatusAccepted, "alice", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "echo x >> runs.txt; sleep 13; echo done", "command_timeout": 60}, &started)
	var it struct {
		ExitCode *int   `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	eventually(t, 2*time.Minute, func() (bool, string) {
		env.expect(http.StatusOK, "alice", "GET", fmt.Sprintf("/sessions/%s/interactions/%s?wait=30", sid, started.InteractionID), nil, &it)
		return it.ExitCode != nil, "the long command never completed"
	})
	if *it.ExitCode != 0 || it.Stdout != "done\n" {
		t.Fatalf("the long command: exit %d, stdout %q", *it.ExitCode, it.Stdout)
	}
	evs, err := env.a.Events.Load(ctx, events.InteractionStream(started.InteractionID), 1)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count[events.ExecStarted] != 1 || count[events.ExecCompleted] != 1 || count[events.ExecRunning] < 3 {
		t.Fatalf("the long command's events: %v", count)
	}
	if code, out, _ := env.exec("alice", sid, "wc -l < runs.txt"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("the long command ran %q times", out)
	}

	n := sandbox.OutputLimit
	code, out, errOut := env.exec("alice", sid, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' o; head -c %d /dev/zero | tr '\\0' e >&2", n, n))
	if code != 0 || out != strings.Repeat("o", n) || errOut != strings.Repeat("e", n) {
		t.Fatalf("1 MiB outputs: exit %d, stdout %d bytes, stderr %d bytes", code, len(out), len(errOut))
	}

	env.variant(t, "go-roman-1", "go-roman-sleeps", "sleep 3600")
	vsid := env.openSession("alice", "go-roman-sleeps")
	defer env.call("alice", "DELETE", "/sessions/"+vsid, nil)
	job := env.startVerify("alice", vsid)
	firstEvent(t, env.a, events.VerificationStream(job), events.VerificationRunning)
	// Another instance of the deployment gets the session's end: it shares the project, but
	// its runtime cannot reach this instance's oracle.
	other := openApp(t, appSpec{Backend: "gcp", Project: env.a.Config.Project, Sandboxes: newAgentRuntime(t)})
	var verifier app.Consumer
	for _, c := range other.Wiring.Consumers {
		if c.Name == "Verifier" {
			verifier = c
		}
	}
	if err := verifier.Handle(ctx, other.App, events.Envelope{Stream: events.SessionStream(vsid), Type: events.SessionEnded}); err != nil {
		t.Fatal(err)
	}
	j := env.waitJob("alice", vsid, job, nil)
	if j.Status != events.JobCancelled {
		t.Fatalf("%s", j.raw)
	}
	s, _, err := loadSession(ctx, env.a, vsid)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		_, _, err := env.rt.AwaitVerify(ctx, env.a.SandboxInfo(vsid, s.Sandbox), sandboxSpec(env.a, s, s.Env), job, 0)
		return errors.Is(err, sandbox.ErrNoSuchRun), fmt.Sprintf("the oracle still runs (%v)", err)
	})
}
