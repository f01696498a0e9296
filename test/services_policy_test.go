package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// svcPolicyV1 and svcPolicyV2 move every kind of service rule: the quality
// role may call echo.echo on ber-1, then on ber-2 and ber-3; the dash role
// may call nothing, then echo on every edge ("*"); only ber-1 allows the
// link with ber-2, then both do.
const svcPolicyV1 = `version: 1
edges:
  ber-1: {labels: {site: berlin}, expose: [echo], links: [ber-2]}
  ber-2: {labels: {site: berlin}, expose: [echo]}
  ber-3: {labels: {site: berlin}, expose: [echo]}
roles:
  quality:
    services: [{service: echo, endpoint: echo, on: [ber-1], audit: true}]
  dash: {telemetry: [ber-1]}
`

const svcPolicyV2 = `version: 1
edges:
  ber-1: {labels: {site: berlin}, expose: [echo], links: [ber-2]}
  ber-2: {labels: {site: berlin}, expose: [echo], links: [ber-1]}
  ber-3: {labels: {site: berlin}, expose: [echo]}
roles:
  quality:
    services: [{service: echo, endpoint: echo, on: [ber-2, ber-3], audit: true}]
  dash:
    telemetry: [ber-1]
    services: [{service: echo, on: ["*"], audit: true}]
`

// TestServicePolicy: the access policy decides who calls which service, end
// to end through the hubs' router and the edges' gateways. A role granted
// a service calls it; one without is refused by the server (a permissions
// violation on publish), before and after 'tether policy apply' changes the
// grant, with no process restarted and no creds reissued. Edge to edge
// works only once both sides link, and the serving edge audits the calling
// edge (a forged caller header changes nothing). An edge that was offline
// during the apply gets its gateway configuration when it links.
func TestServicePolicy(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	var sites []*nats.Conn
	for _, e := range []string{"ber-1", "ber-2"} {
		l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, e, h)), nil)
		tethertest.WaitLinked(t, l, 15*time.Second)
		startEcho(t, l.ClientURL())
		sites = append(sites, tethertest.Connect(t, l.ClientURL()))
	}
	at1, at2 := sites[0], sites[1]
	bundle3 := tethertest.WriteBundle(t, store, "ber-3", h) // not started yet
	applyPolicy(t, store, h, svcPolicyV1)

	user := func(name, role string) *policyClient {
		path, err := store.AddCloudUser(name, role, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return connectPolicyClient(t, h.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()))...)
	}
	quality, dash := user("quality-u", "quality"), user("dash-u", "dash")
	credsBefore := map[string][]byte{}
	for _, u := range []string{"quality-u", "dash-u"} {
		credsBefore[u], _ = securefile.Read(store.Dir() + "/users/" + u + ".creds")
	}

	canCall := func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		tethertest.WaitFor(t, 15*time.Second, func() error {
			m, err := nc.Request(subject, []byte("hi"), 2*time.Second)
			if err != nil {
				return err
			}
			if c := m.Header.Get(contract.HeaderServiceErrorCode); c != "" || string(m.Data) != "hi" {
				return fmt.Errorf("%s: %q code %s (%s)", subject, m.Data, c, m.Header.Get(contract.HeaderServiceError))
			}
			return nil
		})
	}
	// Refused by the server: the role's permissions do not let it publish.
	cannotCall := func(t *testing.T, c *policyClient, subject string) {
		t.Helper()
		if m, err := c.nc.Request(subject, []byte("hi"), 500*time.Millisecond); err == nil && m.Header.Get(contract.HeaderServiceErrorCode) == "" {
			t.Fatalf("%s answered %q", subject, m.Data)
		}
		c.refused(t, "Publish", subject)
	}
	// Refused at the calling edge at once: its link has no interest in a
	// call its leaf user may not publish.
	edgeRefused := func(t *testing.T, at *nats.Conn, subject string) {
		t.Helper()
		tethertest.WaitFor(t, 15*time.Second, func() error {
			_, code, took := call(t, at, svcMsg(subject, "hi"))
			if code != contract.CodeEdgeOffline || took > time.Second {
				return fmt.Errorf("%s: code %d after %s, want %d at once", subject, code, took, contract.CodeEdgeOffline)
			}
			return nil
		})
	}

	t.Run("v1", func(t *testing.T) {
		canCall(t, quality.nc, "edges.ber-1.svc.echo.echo")
		cannotCall(t, quality, "edges.ber-2.svc.echo.echo")
		cannotCall(t, dash, "edges.ber-1.svc.echo.echo")
		// Only ber-1 allows the link: neither side may call the other.
		edgeRefused(t, at1, "edges.ber-2.svc.echo.echo")
		edgeRefused(t, at2, "edges.ber-1.svc.echo.echo")
	})

	// Apply v2 with the binary, while ber-3 is offline: it reports each
	// edge's gateway delivery.
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/v2.yaml", []byte(svcPolicyV2), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runTether(t, "policy", "apply", dir+"/v2.yaml", "--dir", store.Dir(), "--push", h.ClientURL())
	if code != 0 || !strings.Contains(out, "gateway ber-1: delivered") || !strings.Contains(out, "gateway ber-2: delivered") ||
		!strings.Contains(out, "gateway ber-3: edge offline: pending") {
		t.Fatalf("apply v2: exit %d, want ber-1 and ber-2 delivered, ber-3 pending\n%s\n%s", code, out, errOut)
	}

	t.Run("v2", func(t *testing.T) {
		canCall(t, quality.nc, "edges.ber-2.svc.echo.echo")
		cannotCall(t, quality, "edges.ber-1.svc.echo.echo")
		canCall(t, dash.nc, "edges.ber-1.svc.echo.echo")
		canCall(t, dash.nc, "edges.ber-2.svc.echo.echo")
		// Both sides link now; a forged caller header is dropped.
		m := svcMsg("edges.ber-2.svc.echo.echo", "hi")
		m.Header.Set(contract.HeaderCaller, `{"kind":"edge","name":"ber-9"}`)
		tethertest.WaitFor(t, 15*time.Second, func() error {
			if got, code, _ := call(t, at1, m); code != 0 || got != "hi" {
				return fmt.Errorf("ber-1 -> ber-2 echo: %q code %d", got, code)
			}
			return nil
		})
		canCall(t, at2, "edges.ber-1.svc.echo.echo")
		f := &svcFabric{store: store, hub: h}
		tethertest.WaitFor(t, 10*time.Second, func() error {
			for _, r := range auditRecordsOf(t, f, "ber-2") {
				if r.Caller.Kind == "edge" && r.Status == "ok" {
					if r.Caller.Name != "ber-1" {
						t.Fatalf("ber-2 audited caller %+v, want edge ber-1", r.Caller)
					}
					return nil
				}
			}
			return fmt.Errorf("ber-2 has no audit record of ber-1's call")
		})
	})

	t.Run("offline-edge-catches-up", func(t *testing.T) {
		l3 := tethertest.RunLeaf(t, tethertest.LeafConfig(t, bundle3), nil)
		tethertest.WaitLinked(t, l3, 15*time.Second)
		startEcho(t, l3.ClientURL())
		canCall(t, quality.nc, "edges.ber-3.svc.echo.echo")
	})

	for u, b := range credsBefore {
		if now, _ := securefile.Read(store.Dir() + "/users/" + u + ".creds"); string(now) != string(b) {
			t.Errorf("creds of %s changed", u)
		}
	}
}
