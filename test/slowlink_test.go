package test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestSlowLinkCatchUp: a backlog crosses a slow link (64 and 16 KiB/s
// each way, about 50 and 12 messages of 1 KiB a second). The edge keeps
// its link while the data queues in front of it, is never reported
// stalled while messages arrive, and the cloud gets everything once, in
// order.
func TestSlowLinkCatchUp(t *testing.T) {
	for _, tc := range []struct{ rate, count int }{{64 << 10, 300}, {16 << 10, 100}} {
		t.Run(fmt.Sprintf("%dKiBps", tc.rate>>10), func(t *testing.T) { slowLinkCatchUp(t, tc.rate, tc.count) })
	}
}

func slowLinkCatchUp(t *testing.T, rate, count int) {
	f := newFabric(t, fastReports, func(c *leaf.Config) {
		// Flow acks come every 10 to 100 messages (fastbatch.go's pace):
		// at most every 2.2 s here.
		c.StallAfter = 5 * time.Second
		c.Compression = "off" // the rate is for the bytes as they are
		// The default: a queue in front of the link longer than about
		// 2 x ping_interval drops it (newFabric shortens it).
		c.PingInterval = leaf.Defaults().PingInterval
	})
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	cutLink(t, f.proxy, f.leaf)
	pad := make([]byte, 768)
	if _, err := rand.Read(pad); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range count {
		if _, err := f.edge.Publish(ctx, "telemetry.p1", fmt.Appendf(nil, "p1:%d:%s", i, base64.StdEncoding.EncodeToString(pad)),
			jetstream.WithMsgID(fmt.Sprintf("p1-%d", i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	f.proxy.SetRate(rate)
	f.proxy.SetMode(netproxy.Pass)
	healed := time.Now()

	// Watch the edge while the backlog crosses.
	var (
		mu      sync.Mutex
		drops   int
		stalled []string
	)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		wasUp, up := false, false
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			st := f.leaf.Status()
			mu.Lock()
			if up && !st.Link.Connected && wasUp {
				drops++ // up -> down
			}
			up = st.Link.Connected
			wasUp = wasUp || up
			if st.Buffer.Stalled {
				stalled = append(stalled, fmt.Sprintf("%s after the heal: backlog %d, forwarded %d", time.Since(healed).Round(100*time.Millisecond), st.Buffer.BacklogMsgs, st.Buffer.Forwarded))
			}
			mu.Unlock()
		}
	}()
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, count, 60*time.Second)
	took := time.Since(healed)
	close(done)
	<-watched
	if err := c.verify(map[string]int{"p1": count}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d x ~1 KiB crossed a %d B/s link in %s (%.0f msg/s)", count, rate, took.Round(100*time.Millisecond), float64(count)/took.Seconds())
	mu.Lock()
	defer mu.Unlock()
	if drops > 0 {
		t.Errorf("the link dropped %d times while the backlog crossed", drops)
	}
	if len(stalled) > 0 {
		t.Errorf("reported stalled while messages arrived (%d times), first: %s", len(stalled), stalled[0])
	}
}
