package leaf_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestIdleEdgeGarbage: an idle edge allocates little. Its garbage is what
// its RSS grows by between collections (docs/BENCHMARKS.md "Idle edge");
// the service gateway's discovery every 2s once allocated a 512 KiB queue
// each time.
func TestIdleEdgeGarbage(t *testing.T) {
	store := tethertest.NewStore(t)
	tethertest.AddEdge(t, store, "plant-7")
	c := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + tethertest.FreeAddr(t)}, nil))
	c.ReconnectInterval = time.Minute // no hub: its dials are not what is measured
	c.LinkWatchdog = 0
	l, err := leaf.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })

	const window = 7 * time.Second // three of the gateway's discoveries at least
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for end := time.Now().Add(window); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond) // a workload: the edge sits idle
	}
	runtime.ReadMemStats(&after)
	perSec := float64(after.TotalAlloc-before.TotalAlloc) / window.Seconds()
	t.Logf("idle edge allocated %.0f KiB/s over %s", perSec/1024, window)
	const limit = 64 << 10
	if perSec > limit {
		t.Errorf("idle edge allocated %.0f KiB/s, want at most %d KiB/s", perSec/1024, limit>>10)
	}
}
