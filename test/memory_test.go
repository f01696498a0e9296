package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// edgeMemoryBound is the RSS an edge process may reach while it forwards a
// backlog of 500 MB of the largest messages: the forwarder holds at most
// about two 4 MiB pulls read ahead and 16 MiB sent but unconfirmed, and the embedded server's block cache and link buffers
// follow from those.
const edgeMemoryBound = 256 << 20

// TestEdgeMemoryLargeBacklog: an edge (a real process) with 500 MB of
// large messages queued while offline forwards them all once the link
// heals, and its RSS stays under edgeMemoryBound throughout. Heavy (a
// minute or more, 1 GB of disk): TETHER_HEAVY=1 runs it;
// TETHER_HEAVY_MB sets the backlog in MB (default 500).
func TestEdgeMemoryLargeBacklog(t *testing.T) {
	if os.Getenv("TETHER_HEAVY") == "" {
		t.Skip("heavy: set TETHER_HEAVY=1 (500 MB of backlog through a real edge process)")
	}
	mb := envIntDefault(t, "TETHER_HEAVY_MB", 500)
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	p, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	bundle := tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + p.Addr()}, nil)
	l := startCrashLeaf(t, "edge", bundle, t.TempDir())
	l.waitStatus(t, 20*time.Second, "link up", func(st leaf.Status) error {
		if !st.Link.Connected {
			return fmt.Errorf("link down")
		}
		return nil
	})
	p.SetMode(netproxy.Cut)
	l.waitStatus(t, 20*time.Second, "link down", func(st leaf.Status) error {
		if st.Link.Connected {
			return fmt.Errorf("link up")
		}
		return nil
	})
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncMaxPending(16))
	if err != nil {
		t.Fatal(err)
	}
	size := contract.SiteMaxMessage - 64
	n := mb * 1_000_000 / size
	payload := make([]byte, size)
	for i := range n {
		copy(payload, fmt.Sprintf("m:%08d:", i))
		if _, err := js.PublishAsync("telemetry.big", payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		t.Fatalf("%d publishes not acknowledged", js.PublishAsyncPending())
	}
	st, _ := l.status()
	queued, _ := tethertest.ProcRSS(l.proc.cmd.Process.Pid)
	t.Logf("queued %d messages of %d bytes (%d MB on the edge's disk); edge RSS %d MiB", n, size, st.Buffer.BacklogBytes/1e6, queued>>20)

	p.SetMode(netproxy.Pass)
	healed := time.Now()
	var peak uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if rss, err := tethertest.ProcRSS(l.proc.cmd.Process.Pid); err == nil && rss > peak {
			peak = rss
		}
		if st, err := l.status(); err == nil && st.Buffer.BacklogMsgs == 0 && st.Buffer.Forwarded >= uint64(n) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("backlog not forwarded within 10 minutes")
	}
	cloud := tethertest.ConnectCloud(t, store, h)
	if got := crashCloudCount(t, cloud, "plant-7"); got != n {
		t.Errorf("cloud holds %d messages, want %d", got, n)
	}
	t.Logf("forwarded %d MB in %s; edge RSS peak %d MiB (bound %d MiB)", int64(n)*int64(size)/1e6, time.Since(healed).Round(time.Millisecond), peak>>20, edgeMemoryBound>>20)
	if peak > edgeMemoryBound {
		t.Errorf("edge RSS reached %d MiB forwarding a large backlog, bound %d MiB", peak>>20, edgeMemoryBound>>20)
	}
}

func envIntDefault(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
