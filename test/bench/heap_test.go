//go:build bench

package bench

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestBenchHeapSteady looks for memory that grows with the number of
// messages forwarded (reliability.md T-D1, "RSS slope ≈ 0"), without the
// soak's faults: one Tether hub and edge in this process, rounds of
// TETHER_BENCH_BACKLOG messages (default 100k x 256 B) published online
// and counted in the cloud stream; after each round a full GC, then the
// live heap. Rounds run back to back, so state kept for the 2-minute
// dedup windows and the response threshold builds up over the first ones;
// TETHER_BENCH_ROUNDS (default 8) sets how many.
//
//	go test -tags bench -run '^TestBenchHeapSteady$' -count=1 -v ./test/bench
func TestBenchHeapSteady(t *testing.T) {
	rounds := envInt(t, "TETHER_BENCH_ROUNDS", 8)
	count := envInt(t, "TETHER_BENCH_BACKLOG", onlineCount)
	top := startTetherSF(t)
	start := time.Now()
	var heap []uint64
	for r := range rounds {
		res := measureDurable(t, top, count, backlogSize, count)
		if res.lost > 0 || res.dup > 0 {
			t.Fatalf("round %d: lost %d, dup %d", r+1, res.lost, res.dup)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
		t.Logf("round %d at %s: %s msg/s; %d messages forwarded in all; live heap after GC %.1f MB",
			r+1, time.Since(start).Round(time.Second), fmtRate(res.rate), (r+1)*count, float64(ms.HeapAlloc)/(1<<20))
	}
	fmt.Printf("live heap after each round (MB):")
	for _, h := range heap {
		fmt.Printf(" %.1f", float64(h)/(1<<20))
	}
	fmt.Println()
}
