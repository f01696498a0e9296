package test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceCallEdgeToEdgeAndCloud: a site client at plant-7 calls
// plant-8's echo (plant-8 grants plant-7) and a cloud service; plant-8's
// site cannot call plant-7's echo (not granted: the same answer as for a
// service that does not exist); the serving edge audits the call with the
// calling edge as the caller; the cloud service learns the calling edge
// from the router, which the server vouches for.
func TestServiceCallEdgeToEdgeAndCloud(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	edge := func(name string, gw policy.Gateway) string {
		c := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, name, h))
		c.Gateway = writeGateway(t, gw)
		l := tethertest.RunLeaf(t, c, nil)
		tethertest.WaitLinked(t, l, 15*time.Second)
		startEcho(t, l.ClientURL())
		return l.ClientURL()
	}
	a := edge("plant-7", policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}})
	b := edge("plant-8", policy.Gateway{Edge: "plant-8", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalEdge, Name: "plant-7"}, Service: "echo", Endpoint: "echo", Audit: true},
	}})
	siteA, siteB := tethertest.Connect(t, a), tethertest.Connect(t, b)

	if got, code, _ := call(t, siteA, svcMsg("edges.plant-8.svc.echo.echo", "from a")); code != 0 || got != "from a" {
		t.Fatalf("plant-7 -> plant-8 echo: %q code %d", got, code)
	}
	for _, tc := range []struct {
		name    string
		nc      *nats.Conn
		subject string
	}{
		{"plant-8 -> plant-7 echo (no grant)", siteB, "edges.plant-7.svc.echo.echo"},
		{"plant-7 -> plant-8 echo.fail (not granted)", siteA, "edges.plant-8.svc.echo.fail"},
		{"plant-7 -> plant-8 nope (no such service)", siteA, "edges.plant-8.svc.nope.x"},
	} {
		text, code, took := call(t, tc.nc, svcMsg(tc.subject, "x"))
		if code != contract.CodeDenied || took > time.Second {
			t.Errorf("%s: code %d (%q) after %s, want %d at once", tc.name, code, text, took, contract.CodeDenied)
		}
	}

	// A cloud service answers edges; it sees who called.
	cloud := tethertest.ConnectCloud(t, store, h)
	svcAcc, err := store.Account(contract.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.Subscribe("cloud.svc.clock.now", func(m *nats.Msg) {
		var ci struct {
			Acc string `json:"acc"`
		}
		_ = json.Unmarshal([]byte(m.Header.Get("Nats-Request-Info")), &ci)
		caller := m.Header.Get(contract.HeaderCaller)
		if ci.Acc != svcAcc.Pub {
			caller = "untrusted"
		}
		_ = m.Respond([]byte(caller))
	}); err != nil {
		t.Fatal(err)
	}
	_ = cloud.Flush()
	got, code, _ := call(t, siteA, svcMsg("cloud.svc.clock.now", ""))
	if code != 0 || got != `{"kind":"edge","name":"plant-7"}` {
		t.Errorf("plant-7 -> cloud clock.now: %q code %d, want the router's caller plant-7", got, code)
	}
	if text, code, took := call(t, siteA, svcMsg("cloud.svc.nope.x", "")); code == 0 || took > time.Second {
		t.Errorf("plant-7 -> cloud nope.x: %q code %d after %s, want an error at once", text, code, took)
	}

	// plant-8 audited plant-7's calls: one ok, two denied.
	f := &svcFabric{store: store, hub: h}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		recs := auditRecordsOf(t, f, "plant-8")
		n := map[string]int{}
		for _, r := range recs {
			n[fmt.Sprintf("%s %s %s %d", r.Caller.Kind, r.Caller.Name, r.Status, r.Code)]++
		}
		if want := map[string]int{"edge plant-7 ok 0": 1, "edge plant-7 error 403": 2}; fmt.Sprint(n) != fmt.Sprint(want) {
			return fmt.Errorf("plant-8's audit: %v, want %v", n, want)
		}
		return nil
	})
}
