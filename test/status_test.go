package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestFleetStatus: the fleet view shows what the hubs see: an edge online,
// then offline once its link is cut, with the commands queued for it.
func TestFleetStatus(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	sys, err := f.store.ConnectSystem(f.hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	e, err := f.store.Edge("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	pubs := map[string]string{"plant-7": e.Account.Pub}
	view := func() hub.EdgeView {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := hub.Fleet(ctx, sys, f.cloud, pubs, []string{"plant-7"})
		if err != nil || len(v) != 1 {
			t.Fatalf("Fleet = %v, %v", v, err)
		}
		return v[0]
	}
	tethertest.WaitFor(t, 5*time.Second, func() error {
		if v := view(); !v.Online || v.Hub != "hub-1" || v.Transport != "tls" {
			return fmt.Errorf("online edge shown as %+v", v)
		}
		return nil
	})
	f.proxy.SetMode(netproxy.Cut)
	js, _ := jetstream.NewWithDomain(f.cloud, hub.JetStreamDomain)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if v := view(); v.Online {
			return fmt.Errorf("cut edge still shown online: %+v", v)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if _, err := js.Publish(context.Background(), "edges.plant-7.cmd.x", nil); err != nil {
			t.Fatal(err)
		}
	}
	if v := view(); v.CommandsWaiting != 3 {
		t.Errorf("commands waiting = %d, want 3 (%+v)", v.CommandsWaiting, v)
	}
}
