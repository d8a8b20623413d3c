package sqlite_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/codeset/codeset/projections"
)

// BenchmarkUpdate: read-model updates (what a projector does per event), each on its own
// document, from concurrent writers; durable (synchronous=FULL).
func BenchmarkUpdate(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range writers {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						err := projections.Update(context.Background(), s, "bench", fmt.Sprint("doc-", w, "-", n%50), func(d *struct{ N int64 }, _ bool) (bool, error) {
							d.N++
							return true, nil
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
