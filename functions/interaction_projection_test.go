package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/codeset/codeset/app"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
)

// countingDocs counts the read-model writes (Update) per collection.
type countingDocs struct {
	projections.DocStore
	mu      sync.Mutex
	updates map[string]int
}

func (c *countingDocs) Update(ctx context.Context, coll, id string, fn func(json.RawMessage) (json.RawMessage, error)) error {
	c.mu.Lock()
	c.updates[coll]++
	c.mu.Unlock()
	return c.DocStore.Update(ctx, coll, id, fn)
}

func (c *countingDocs) count(coll string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.updates[coll]
}

// A quick command's request, claim and result reach its read-model document together, once the
// command has settled; and the answer of a waiting GET, which the executor builds from what it
// appended, is the document the projection writes later.
func TestQuickExecProjectsItsInteractionOnce(t *testing.T) {
	t.Parallel()
	var docs *countingDocs
	h := newSessionHarnessWith(t, "", nil, nil, nil, func(a *app.App) {
		docs = &countingDocs{DocStore: a.Docs, updates: map[string]int{}}
		a.Docs = docs
	})
	h.addSample(events.Environment{Archive: sampleArchive(t), WorkDir: "/workspace/repo"})
	h.credit("pia", 100_000)
	sid := h.openSession("pia")

	var started struct {
		InteractionID string `json:"interaction_id"`
	}
	h.expect(http.StatusAccepted, "pia", "POST", "/sessions/"+sid+"/exec", map[string]any{"command": "echo quick", "command_timeout": 10}, &started)
	var waited map[string]any
	h.expect(http.StatusOK, "pia", "GET", "/sessions/"+sid+"/interactions/"+started.InteractionID+"?wait=30", nil, &waited)
	if waited["status"] != "completed" || waited["stdout"] != "quick\n" {
		t.Fatalf("waiting GET answered %v", waited)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		d, err := projections.Get[projections.InteractionDoc](context.Background(), docs, projections.InteractionCollection, started.InteractionID)
		return err == nil && d.Status == "completed", fmt.Sprintf("the interaction's document never showed it completed: %+v %v", d, err)
	})
	// Every delivery of the request, the claim and the result has passed: the bus marks an event
	// published once every consumer has handled it.
	waitOutboxEmpty(t, h.a)
	// One write when the command finished within execSettle; two when a loaded machine made it
	// slower. Three would mean one per event: no coalescing.
	if n := docs.count(projections.InteractionCollection); n > 2 {
		t.Errorf("%d writes of the interaction's document for one quick command, want at most 2", n)
	}
	var later map[string]any
	h.expect(http.StatusOK, "pia", "GET", "/sessions/"+sid+"/interactions/"+started.InteractionID, nil, &later)
	if !reflect.DeepEqual(waited, later) {
		t.Errorf("the waiting GET answered\n%v\nthe read model later says\n%v", waited, later)
	}
}
