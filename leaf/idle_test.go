package leaf_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestIdleEdgeGarbage: an idle edge allocates little, and one that exposes
// no service does not discover the site's services. Its garbage is what
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

	// The edge exposes no service (no gateway configuration): it has no
	// reason to ask the site's services for their INFO.
	nc := tethertest.Connect(t, l.ClientURL())
	infos, err := nc.SubscribeSync("$SRV.INFO")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	const window = 7 * time.Second // three of the gateway's discovery ticks at least
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
	if n, _, err := infos.Pending(); err != nil || n != 0 {
		t.Errorf("the edge asked the site's services for their INFO %d times in %s (err %v), with nothing exposed; want 0", n, window, err)
	}
}
