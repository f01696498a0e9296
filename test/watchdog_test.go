package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestLinkWatchdogQuietInOutage: during an ordinary outage longer than the
// watchdog the embedded server keeps trying to reach the hub, so the
// watchdog (which stops an edge whose connect loop died, nats-server
// #7615) stays quiet, and the edge links again when the hub is back.
func TestLinkWatchdogQuietInOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s outage: skipped in -short")
	}
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	proxy, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + proxy.Addr()}, nil))
	cfg.LinkWatchdog = 5600 * time.Millisecond // the least allowed with a 250 ms reconnect interval
	l := tethertest.RunLeaf(t, cfg, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)

	proxy.SetMode(netproxy.Cut)
	down := time.Now()
	// The outage outlasts the watchdog by half; WaitFor polls the
	// watchdog's channel and never succeeds early.
	outage := cfg.LinkWatchdog * 3 / 2
	tethertest.WaitFor(t, outage+5*time.Second, func() error {
		select {
		case err := <-l.Stuck():
			t.Fatalf("watchdog fired %s into an ordinary outage: %v", time.Since(down), err)
		default:
		}
		if time.Since(down) < outage {
			return fmt.Errorf("outage %s of %s", time.Since(down).Round(time.Second), outage)
		}
		return nil
	})
	proxy.SetMode(netproxy.Pass)
	tethertest.WaitLinked(t, l, 10*time.Second)
}
