package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestExactlyOnceBeyondDedupWindow: the cloud stores a batch but every
// PubAck is lost on the way back; the edge notices the dead link only
// after the cloud's duplicate window has passed, and resends. The cloud
// still holds each message once, in order: on every new session the
// edge asks the cloud how far its data got (its high-water mark) and
// skips what is already there.
func TestExactlyOnceBeyondDedupWindow(t *testing.T) {
	store := tethertest.NewStore(t)
	hc := tethertest.HubConfig(t, store, "hub-1")
	hc.TelemetryDedupWindow = 100 * time.Millisecond // far shorter than the time to notice a dead link
	h := tethertest.RunHub(t, hc, nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	proxy, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	var edgeLog tethertest.LogBuffer
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + proxy.Addr()}, nil))
	cfg.PingInterval = 500 * time.Millisecond
	l := tethertest.RunLeaf(t, cfg, edgeLog.Logger())
	tethertest.WaitLinked(t, l, 10*time.Second)
	js, err := jetstream.New(tethertest.Connect(t, l.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	// Publishing goes on throughout, so the forwarder has a full window
	// in flight when the answers start to get lost.
	const total = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(t, js, "eo", 0, total)
	}()
	cloud := tethertest.ConnectCloud(t, store, h)
	cjs, _ := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	tethertest.WaitFor(t, 20*time.Second, func() error {
		n, err := cloudCount(cjs, "edges.plant-7.>")
		if err == nil && n < 1000 {
			err = fmt.Errorf("cloud holds %d, waiting for 1000", n)
		}
		return err
	})
	// Answers from the hub are lost from now on; what the edge sends is
	// still stored.
	proxy.SetMode(netproxy.DropReplies)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if l.Link().Connected {
			return fmt.Errorf("edge has not noticed the dead link yet")
		}
		return nil
	})
	atCut, _ := cloudCount(cjs, "edges.plant-7.>")
	proxy.SetMode(netproxy.Pass)
	<-done
	c := newChecker()
	drainCloud(t, cloud, "plant-7", c, total, 60*time.Second)
	if err := c.verify(map[string]int{"eo": total}); err != nil {
		t.Fatal(err)
	}
	if n, _ := cloudCount(cjs, "edges.plant-7.>"); n != total {
		t.Fatalf("cloud stream holds %d messages of plant-7, want %d (no duplicates)", n, total)
	}
	t.Logf("cloud held %d messages when the edge noticed its dead link", atCut)
	if !edgeLog.Contains("cloud already holds") {
		t.Errorf("edge log does not say it skipped what the cloud holds:\n%s", edgeLog.String())
	}
}

func cloudCount(js jetstream.JetStream, filter string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
