package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceAuditAcrossOutage: the audit records of calls made just
// before the link dies (their PubAcks lost) and after it comes back land
// in the cloud exactly once each; a site client cannot add a record.
func TestServiceAuditAcrossOutage(t *testing.T) {
	f := &svcFabric{store: tethertest.NewStore(t)}
	hc := tethertest.HubConfig(t, f.store, "hub-1")
	hc.TelemetryDedupWindow = 100 * time.Millisecond // exactly once must not rest on the duplicate window
	f.hub = tethertest.RunHub(t, hc, nil)
	tethertest.AddEdge(t, f.store, "plant-7", f.hub)
	proxy, err := netproxy.New(strings.TrimPrefix(f.hub.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	c := tethertest.LeafConfig(t, tethertest.BundleFile(t, f.store, "plant-7", []string{"tls://" + proxy.Addr()}, nil))
	c.PingInterval = 500 * time.Millisecond
	c.Gateway = writeGateway(t, policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "cloud"}, Service: "echo", Endpoint: "*", Audit: true},
	}})
	f.edge = tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, f.edge, 15*time.Second)
	startEcho(t, f.edge.ClientURL())
	cloud := tethertest.ConnectCloud(t, f.store, f.hub)

	calls := func(n int) {
		t.Helper()
		for i := range n {
			if got, code, _ := call(t, cloud, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), fmt.Sprint(i))); code != 0 || got != fmt.Sprint(i) {
				t.Fatalf("call %d: %q code %d", i, got, code)
			}
		}
	}
	calls(50)
	// The hub's answers (the records' PubAcks among them) are lost now.
	proxy.SetMode(netproxy.DropReplies)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if f.edge.Link().Connected {
			return fmt.Errorf("edge has not noticed the dead link yet")
		}
		return nil
	})
	// A site client tries to add a record of its own.
	site := tethertest.Connect(t, f.edge.ClientURL(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	_ = site.Publish(contract.LocalAuditSubject("echo", "echo"), []byte(`{"caller":{"kind":"user","name":"forged"}}`))
	_ = site.Flush()
	proxy.SetMode(netproxy.Pass)
	tethertest.WaitLinked(t, f.edge, 20*time.Second)
	tethertest.WaitFor(t, 20*time.Second, func() error {
		_, code, _ := call(t, cloud, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "back"))
		if code != 0 {
			return fmt.Errorf("call after the outage: code %d", code)
		}
		return nil
	})
	calls(49)
	tethertest.WaitFor(t, 30*time.Second, func() error {
		recs := auditRecords(t, f)
		ids := map[string]bool{}
		for _, r := range recs {
			if r.Caller.Name != "cloud" || r.Status != "ok" || r.Call == "" {
				return fmt.Errorf("unexpected audit record %+v", r)
			}
			ids[r.Call] = true
		}
		if len(recs) != 100 || len(ids) != 100 {
			return fmt.Errorf("%d audit records (%d distinct calls), want 100 once each", len(recs), len(ids))
		}
		return nil
	})
}
