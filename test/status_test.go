package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestFleetStatus: the fleet view shows what the hubs see: an edge online,
// then offline once its link is cut, with the commands queued for it.
func TestFleetStatus(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	sys, err := fleet.ConnectSystem(f.store, f.hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	e, err := f.store.Edge("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	pubs := map[string]string{"plant-7": e.Account.Pub}
	view := func() fleet.EdgeView {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := fleet.Fleet(ctx, sys, f.cloud, pubs, []string{"plant-7"})
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
	js, _ := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
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

// fabricView returns the fleet view of plant-7 in f.
func fabricView(t *testing.T, f *fabric) fleet.EdgeView {
	t.Helper()
	return fleetView(t, f.store, f.hub, f.cloud, "plant-7")
}

func fastReports(c *leaf.Config) {
	c.StatusInterval = 250 * time.Millisecond
	c.StallAfter = 2 * time.Second
}

// setCloudTelemetryLimit makes the CLOUD telemetry stream refuse new
// messages once it holds max (max < 0: accept again).
func setCloudTelemetryLimit(t *testing.T, cloud *nats.Conn, max int64) {
	t.Helper()
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = max, jetstream.DiscardNew
	if max < 0 {
		cfg.Discard = jetstream.DiscardOld
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update cloud telemetry stream: %v", err)
	}
}

func backlogOf(v fleet.EdgeView) string {
	if v.BacklogMsgs == nil {
		return "unknown"
	}
	return fmt.Sprintf("%d msgs, %d bytes, oldest %s", *v.BacklogMsgs, *v.BacklogBytes, v.OldestAge)
}

// TestFleetStatusBacklog: the fleet view shows the edge's own backlog.
// While the cloud refuses its messages the transfer is shown stalled (never
// ok with lag 0); with the link cut the edge is offline with its last
// reported backlog, whose oldest message keeps aging; once the link heals
// and the cloud accepts again the backlog drains to 0 and the state is ok.
func TestFleetStatusBacklog(t *testing.T) {
	f := newFabric(t, fastReports)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if v := fabricView(t, f); v.State != fleet.StateOK || v.BacklogMsgs == nil || *v.BacklogMsgs != 0 {
			return fmt.Errorf("linked idle edge: state %s (%s), backlog %s", v.State, v.StateReason, backlogOf(v))
		}
		return nil
	})
	publish(t, f.edge, "p1", 0, 1)
	drainCloud(t, f.cloud, "plant-7", newChecker(), 1, 10*time.Second)

	setCloudTelemetryLimit(t, f.cloud, 1) // the cloud refuses whatever comes next
	publish(t, f.edge, "p1", 1, 501)
	var v fleet.EdgeView
	tethertest.WaitFor(t, 15*time.Second, func() error {
		v = fabricView(t, f)
		if v.State != fleet.StateStalled || v.BacklogMsgs == nil || *v.BacklogMsgs != 500 || v.LastError == "" {
			return fmt.Errorf("refused transfer: state %s (%s), backlog %s, last error %q", v.State, v.StateReason, backlogOf(v), v.LastError)
		}
		return nil
	})
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	data, err := contract.MarshalReport(f.leaf.Report(rctx))
	rcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status report with a backlog and a last error: %d bytes", len(data))
	t.Logf("cloud refusing: state %s (%s), backlog %s, last error %q", v.State, v.StateReason, backlogOf(v), v.LastError)
	if budget := f.leaf.Status().Buffer.MaxBytes; v.BudgetBytes == nil || *v.BudgetBytes != budget || budget <= 0 {
		t.Errorf("fleet view budget %v, want the edge's buffer budget %d", v.BudgetBytes, budget)
	}

	f.proxy.SetMode(netproxy.Cut)
	tethertest.WaitFor(t, 30*time.Second, func() error {
		v = fabricView(t, f)
		if v.Online || v.State != fleet.StateOffline || v.BacklogMsgs == nil || *v.BacklogMsgs != 500 || v.ReportAge == "" {
			return fmt.Errorf("cut edge: online %v, state %s (%s), backlog %s, report age %q", v.Online, v.State, v.StateReason, backlogOf(v), v.ReportAge)
		}
		return nil
	})
	first, _ := time.ParseDuration(v.OldestAge)
	tethertest.WaitFor(t, 5*time.Second, func() error {
		later := fabricView(t, f)
		if d, _ := time.ParseDuration(later.OldestAge); d <= first {
			return fmt.Errorf("offline backlog's oldest age did not grow: %s then %s", v.OldestAge, later.OldestAge)
		}
		return nil
	})
	t.Logf("offline: state %s (%s), backlog %s, report age %s", v.State, v.StateReason, backlogOf(v), v.ReportAge)

	setCloudTelemetryLimit(t, f.cloud, -1)
	f.proxy.SetMode(netproxy.Pass)
	healed := time.Now()
	tethertest.WaitFor(t, 30*time.Second, func() error {
		v = fabricView(t, f)
		if v.State != fleet.StateOK || v.BacklogMsgs == nil || *v.BacklogMsgs != 0 || !v.Online {
			return fmt.Errorf("healed edge: online %v, state %s (%s), backlog %s", v.Online, v.State, v.StateReason, backlogOf(v))
		}
		return nil
	})
	t.Logf("status showed backlog 0 and ok %s after the link healed (forwarded %d)", time.Since(healed).Round(time.Millisecond), v.Forwarded)
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, 501, 10*time.Second)
	if err := c.verify(map[string]int{"p1": 501}); err != nil {
		t.Fatal(err)
	}
}

// TestFleetStatusStalledBlackhole: the link is black-holed. The hubs still
// list the edge's connection for a while (their pings have not timed out),
// but its reports stop: the fleet view shows it stalled, not ok.
func TestFleetStatusStalledBlackhole(t *testing.T) {
	f := newFabric(t, fastReports)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if v := fabricView(t, f); v.State != fleet.StateOK {
			return fmt.Errorf("linked edge: state %s (%s)", v.State, v.StateReason)
		}
		return nil
	})
	f.proxy.SetMode(netproxy.Blackhole)
	start := time.Now()
	var v fleet.EdgeView
	tethertest.WaitFor(t, 10*time.Second, func() error {
		v = fabricView(t, f)
		if v.State == fleet.StateOK {
			return fmt.Errorf("black-holed edge still ok: %+v", v)
		}
		if v.Online && v.State != fleet.StateStalled {
			return fmt.Errorf("black-holed edge listed by the hub but state %s (%s)", v.State, v.StateReason)
		}
		return nil
	})
	t.Logf("black-holed edge shown %s (online per hubs: %v) after %s: %s", v.State, v.Online, time.Since(start).Round(time.Millisecond), v.StateReason)
	if !v.Online {
		t.Logf("note: the hub dropped the connection before the report went stale")
	}
}
