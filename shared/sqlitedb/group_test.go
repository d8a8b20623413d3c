package sqlitedb

import (
	"runtime"
	"sync"
	"testing"
)

// Every request of many concurrent callers is committed once, in groups no heavier than Max, and
// each caller returns only after its own request was committed.
func TestGroupCommitsEachRequestOnce(t *testing.T) {
	var mu sync.Mutex
	committed := map[int]int{}
	var groups int
	g := &Group[int]{Max: 8, Commit: func(group []int) bool {
		if len(group) > 8 {
			t.Errorf("a group of %d, over Max 8", len(group))
		}
		mu.Lock()
		defer mu.Unlock()
		groups++
		for _, r := range group {
			committed[r]++
		}
		return true
	}}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			g.Do(i)
			mu.Lock()
			defer mu.Unlock()
			if committed[i] != 1 {
				t.Errorf("request %d returned after %d commits, want 1", i, committed[i])
			}
		})
	}
	wg.Wait()
	if len(committed) != 200 {
		t.Fatalf("%d requests committed, want 200", len(committed))
	}
	t.Logf("200 requests in %d groups", groups)
}

// A group that must not stand is committed again one request at a time.
func TestGroupRetriesAFailedGroupOneByOne(t *testing.T) {
	var mu sync.Mutex
	var singles []int
	release := make(chan struct{})
	first := true
	g := &Group[int]{Max: 100, Commit: func(group []int) bool {
		mu.Lock()
		if first { // hold the first commit so that the others queue behind it
			first = false
			mu.Unlock()
			<-release
			return true
		}
		defer mu.Unlock()
		if len(group) > 1 {
			return false
		}
		singles = append(singles, group[0])
		return true
	}}
	var wg sync.WaitGroup
	wg.Go(func() { g.Do(0) })
	for !func() bool { mu.Lock(); defer mu.Unlock(); return !first }() {
		runtime.Gosched()
	}
	for i := 1; i <= 5; i++ {
		wg.Go(func() { g.Do(i) })
	}
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == 5 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if len(singles) != 5 {
		t.Fatalf("retried %v one by one, want the 5 queued requests", singles)
	}
}
