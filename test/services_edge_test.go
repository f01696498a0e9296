package test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestServiceCallEdgeToEdgeAndCloud: with a policy that links plant-7 and
// plant-8 and lets plant-7 call the cloud service clock, a site client at
// plant-7 calls plant-8's echo (any endpoint: a link grants every exposed
// service) and the cloud service; plant-8's site cannot call plant-7's
// echo (plant-7 exposes nothing: the same answer as for a service that
// does not exist); the serving edge audits the calls with the calling edge
// as the caller; the cloud service learns the calling edge from the
// router, which the server vouches for; a cloud service plant-7 may not
// call is refused at once.
func TestServiceCallEdgeToEdgeAndCloud(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	edge := func(name string) string {
		l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, name, h)), nil)
		tethertest.WaitLinked(t, l, 15*time.Second)
		startEcho(t, l.ClientURL())
		return l.ClientURL()
	}
	a, b := edge("plant-7"), edge("plant-8")
	applyPolicy(t, store, h, `version: 1
edges:
  plant-7: {labels: {site: x}, links: [plant-8], calls: [clock]}
  plant-8: {labels: {site: x}, expose: [echo], links: [plant-7]}
`)
	siteA, siteB := tethertest.Connect(t, a), tethertest.Connect(t, b)

	tethertest.WaitFor(t, 15*time.Second, func() error {
		if got, code, _ := call(t, siteA, svcMsg("edges.plant-8.svc.echo.echo", "from a")); code != 0 || got != "from a" {
			return fmt.Errorf("plant-7 -> plant-8 echo: %q code %d", got, code)
		}
		return nil
	})
	for _, tc := range []struct {
		name    string
		nc      *nats.Conn
		subject string
		want    int
	}{
		{"plant-8 -> plant-7 echo (not exposed)", siteB, "edges.plant-7.svc.echo.echo", contract.CodeDenied},
		{"plant-7 -> plant-8 echo.fail (the service's error)", siteA, "edges.plant-8.svc.echo.fail", 418},
		{"plant-7 -> plant-8 nope (no such service)", siteA, "edges.plant-8.svc.nope.x", contract.CodeDenied},
	} {
		text, code, took := call(t, tc.nc, svcMsg(tc.subject, "x"))
		if code != tc.want || took > time.Second {
			t.Errorf("%s: code %d (%q) after %s, want %d at once", tc.name, code, text, took, tc.want)
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
	if text, code, took := call(t, siteA, svcMsg("cloud.svc.nope.x", "")); code != contract.CodeEdgeOffline || took > time.Second {
		t.Errorf("plant-7 -> cloud nope.x (not in its calls): %q code %d after %s, want %d at once", text, code, took, contract.CodeEdgeOffline)
	}

	// plant-8 audited plant-7's calls: one ok, one the service failed,
	// one denied.
	f := &svcFabric{store: store, hub: h}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		recs := auditRecordsOf(t, f, "plant-8")
		n := map[string]int{}
		for _, r := range recs {
			n[fmt.Sprintf("%s %s %s %d", r.Caller.Kind, r.Caller.Name, r.Status, r.Code)]++
		}
		if want := map[string]int{"edge plant-7 ok 0": 1, "edge plant-7 error 418": 1, "edge plant-7 error 403": 1}; fmt.Sprint(n) != fmt.Sprint(want) {
			return fmt.Errorf("plant-8's audit: %v, want %v", n, want)
		}
		return nil
	})
}
