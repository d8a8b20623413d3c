package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// OracleRuns runs verifications on their own in this process, by id: the StartVerify,
// AwaitVerify and StopVerify of a runtime whose oracles are processes of this one (the local
// runtime, whose sandboxes live and die with the server anyway).
type OracleRuns struct {
	mu   sync.Mutex
	byID map[string]*oracleRun
}

type oracleRun struct {
	done   chan struct{}
	res    VerifyResult
	err    error
	cancel context.CancelFunc
}

// Start runs verify under id on its own, unless id is known already.
func (o *OracleRuns) Start(id string, verify func(ctx context.Context) (VerifyResult, error)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.byID[id]; ok {
		return
	}
	if o.byID == nil {
		o.byID = make(map[string]*oracleRun)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &oracleRun{done: make(chan struct{}), cancel: cancel}
	o.byID[id] = run
	go func() {
		run.res, run.err = verify(ctx)
		close(run.done)
	}()
}

// Await waits up to wait for run id.
func (o *OracleRuns) Await(ctx context.Context, id string, wait time.Duration) (VerifyResult, bool, error) {
	o.mu.Lock()
	run, ok := o.byID[id]
	o.mu.Unlock()
	if !ok {
		return VerifyResult{}, false, fmt.Errorf("%w: oracle run %s", ErrNoSuchRun, id)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-run.done:
		return run.res, true, run.err
	case <-t.C:
	case <-ctx.Done():
	}
	return VerifyResult{}, false, nil
}

// Stop cancels run id (its oracle's processes end with it) and forgets it.
func (o *OracleRuns) Stop(id string) {
	o.mu.Lock()
	run, ok := o.byID[id]
	delete(o.byID, id)
	o.mu.Unlock()
	if ok {
		run.cancel()
		<-run.done
	}
}

// Verify runs one verification from start to end through rt's StartVerify, AwaitVerify and
// StopVerify: for callers that may wait as long as it takes (tests, tools).
func Verify(ctx context.Context, rt Runtime, info Info, spec Spec, req VerifyRequest) (VerifyResult, error) {
	b := make([]byte, 8)
	rand.Read(b)
	id := "verify-" + hex.EncodeToString(b)
	defer rt.StopVerify(context.WithoutCancel(ctx), info, spec, id)
	if err := rt.StartVerify(ctx, info, spec, req, id); err != nil {
		return VerifyResult{}, err
	}
	for {
		res, done, err := rt.AwaitVerify(ctx, info, spec, id, time.Minute)
		if done || err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return VerifyResult{}, ctx.Err()
		}
	}
}
