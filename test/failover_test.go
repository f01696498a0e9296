package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestClusterFailover: in a 3-hub cluster, shutting down the hub an edge is
// attached to moves the edge to another hub within a few seconds, and data
// flows again.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	cfg := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", hubs...))
	l := tethertest.RunLeaf(t, cfg, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)

	attached := attachedHub(t, hubs, l.Link().Hub)
	var survivor *hub.Server
	for _, h := range hubs {
		if h != attached {
			survivor = h
			break
		}
	}
	cloud := tethertest.ConnectCloud(t, store, survivor)
	local := tethertest.Connect(t, l.ClientURL())
	up, err := cloud.SubscribeSync("edges.plant-7.telemetry.>")
	if err != nil {
		t.Fatal(err)
	}
	cloud.Flush()
	publishUntilReceived(t, local, "telemetry.before", up)

	before := l.Link()
	start := time.Now()
	if err := attached.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if now := l.Link(); !now.Connected || now.Hub == before.Hub {
			return fmt.Errorf("edge still not re-attached: %+v", now)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("edge moved from %s to %s in %s", before.Hub, l.Link().Hub, took)
	if took > 6*time.Second {
		t.Errorf("re-attach took %s, want a few seconds (< 6s)", took)
	}
	publishUntilReceived(t, local, "telemetry.after", up)
}

// attachedHub returns the hub whose leafnode port is addr's port.
func attachedHub(t *testing.T, hubs []*hub.Server, addr string) *hub.Server {
	t.Helper()
	for _, h := range hubs {
		if strings.HasSuffix(h.LeafURL(), addr[strings.LastIndex(addr, ":"):]) {
			return h
		}
	}
	t.Fatalf("edge attached to %s, which is none of the hubs", addr)
	return nil
}

// TestDeadLinkNoticedInSeconds: a link that silently stops carrying bytes
// (no FIN, no RST) is declared down within PingInterval*(MaxPingsOut+1)
// plus slack, and comes back once the path heals.
func TestDeadLinkNoticedInSeconds(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	proxy, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	bundle := tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + proxy.Addr()}, nil)
	cfg := tethertest.LeafConfig(t, bundle)
	cfg.PingInterval = 500 * time.Millisecond
	l := tethertest.RunLeaf(t, cfg, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)

	proxy.SetMode(netproxy.Blackhole)
	start := time.Now()
	bound := cfg.PingInterval*time.Duration(cfg.MaxPingsOut+1) + 2*time.Second
	tethertest.WaitFor(t, bound, func() error {
		if l.Link().Connected {
			return fmt.Errorf("link still reported up %s after it went dark", time.Since(start))
		}
		return nil
	})
	t.Logf("dead link noticed after %s (bound %s)", time.Since(start), bound)

	proxy.SetMode(netproxy.Pass)
	tethertest.WaitLinked(t, l, 10*time.Second)
}
