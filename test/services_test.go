package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
	"github.com/tether-fabric/tether/policy"
)

// svcFabric is a hub, one edge with a gateway configuration and two admin
// cloud users: ops (granted) and intern (not).
type svcFabric struct {
	store       *accounts.Store
	hub         *hub.Server
	edge        *leaf.Server
	ops, intern *nats.Conn
}

func writeGateway(t *testing.T, gw policy.Gateway) string {
	t.Helper()
	data, err := json.Marshal(gw)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startSvcFabric(t *testing.T, gw policy.Gateway) *svcFabric {
	t.Helper()
	f := &svcFabric{store: tethertest.NewStore(t)}
	f.hub = tethertest.RunHub(t, tethertest.HubConfig(t, f.store, "hub-1"), nil)
	bundle := tethertest.WriteBundle(t, f.store, "plant-7", f.hub)
	c := tethertest.LeafConfig(t, bundle)
	c.Gateway = writeGateway(t, gw)
	f.edge = tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, f.edge, 15*time.Second)
	user := func(name string) *nats.Conn {
		path, err := f.store.AddCloudUser(name, contract.RoleAdmin, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return tethertest.Connect(t, f.hub.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(f.store.CAFile()))...)
	}
	f.ops, f.intern = user("ops"), user("intern")
	return f
}

// startEcho runs a micro service "echo" at the edge whose endpoint listens
// on a subject of its own (not svc.>): the gateway finds it by name.
func startEcho(t *testing.T, url string) micro.Service {
	t.Helper()
	nc := tethertest.Connect(t, url)
	svc, err := micro.AddService(nc, micro.Config{Name: "echo", Version: "1.2.0", Description: "echoes"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := svc.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		micro.WithEndpointSubject("site.anything.echo")); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddEndpoint("fail", micro.HandlerFunc(func(r micro.Request) { _ = r.Error("418", "teapot", nil) })); err != nil {
		t.Fatal(err)
	}
	return svc
}

// call makes a request and returns the answer's data, its error code (0:
// none) and how long it took.
func call(t *testing.T, nc *nats.Conn, m *nats.Msg) (string, int, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := nc.RequestMsg(m, 5*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("call %s: %v after %s", m.Subject, err, took)
	}
	code := 0
	if c := resp.Header.Get(contract.HeaderServiceErrorCode); c != "" {
		fmt.Sscan(c, &code)
	}
	if code != 0 {
		return resp.Header.Get(contract.HeaderServiceError), code, took
	}
	return string(resp.Data), 0, took
}

func svcMsg(subject, data string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(data)
	return m
}

// auditRecords reads the edge's audit records from the CLOUD telemetry
// stream.
func auditRecords(t *testing.T, f *svcFabric) []contract.AuditRecord {
	t.Helper()
	return auditRecordsOf(t, f, "plant-7")
}

func auditRecordsOf(t *testing.T, f *svcFabric, edge string) []contract.AuditRecord {
	t.Helper()
	cloud := tethertest.ConnectCloud(t, f.store, f.hub)
	defer cloud.Close()
	js, _ := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{contract.CloudAuditFilter(edge, "")}})
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.AuditRecord
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 {
			return out
		}
		m, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := contract.DecodeAuditRecords(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
}

// TestServiceCallCloudToEdge: a cloud user with a grant calls a micro
// service at an edge by its name; a user without one, an unknown service
// and an offline edge get their error at once; a forged caller header
// changes nothing; every call is audited once in the cloud.
func TestServiceCallCloudToEdge(t *testing.T) {
	f := startSvcFabric(t, policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "ops"}, Service: "echo", Endpoint: "*", Audit: true},
	}})
	startEcho(t, f.edge.ClientURL())

	got, code, _ := call(t, f.ops, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "hello"))
	if code != 0 || got != "hello" {
		t.Fatalf("ops: echo = %q (code %d), want hello", got, code)
	}
	// The answer names no account of the fabric: the Nats-Request-Info the
	// hub stamped on the edge's answer (the edge account's key) stays
	// with the router.
	if resp, err := f.ops.RequestMsg(svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "hi"), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if h := resp.Header.Get("Nats-Request-Info"); h != "" {
		t.Errorf("the answer carries Nats-Request-Info %s, want none", h)
	}
	// A service error travels back in the micro error headers.
	if got, code, _ := call(t, f.ops, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "fail"), "")); code != 418 || got != "teapot" {
		t.Errorf("ops: echo.fail = %q code %d, want teapot 418", got, code)
	}
	for _, tc := range []struct {
		name    string
		nc      *nats.Conn
		subject string
		code    int
	}{
		{"no grant", f.intern, contract.CloudServiceSubject("plant-7", "echo", "echo"), contract.CodeDenied},
		{"unknown service", f.ops, contract.CloudServiceSubject("plant-7", "nope", "echo"), contract.CodeNoService},
		{"unknown edge", f.ops, contract.CloudServiceSubject("plant-99", "echo", "echo"), contract.CodeEdgeOffline},
	} {
		text, code, took := call(t, tc.nc, svcMsg(tc.subject, "x"))
		if code != tc.code || took > time.Second {
			t.Errorf("%s: code %d (%q) after %s, want %d within 1s", tc.name, code, text, took, tc.code)
		}
	}
	// Forged identity: intern writes ops' identity in both headers; ops
	// writes intern's. Neither changes who the edge sees.
	forged := func(nc *nats.Conn, as string) *nats.Msg {
		m := svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "forged")
		m.Header.Set("Nats-Request-Info", fmt.Sprintf(`{"acc":"x","name_tag":%q}`, as))
		m.Header.Set(contract.HeaderCaller, fmt.Sprintf(`{"kind":"user","name":%q}`, as))
		return m
	}
	if _, code, _ := call(t, f.intern, forged(f.intern, "ops")); code != contract.CodeDenied {
		t.Errorf("intern posing as ops: code %d, want %d", code, contract.CodeDenied)
	}
	if got, code, _ := call(t, f.ops, forged(f.ops, "intern")); code != 0 || got != "forged" {
		t.Errorf("ops posing as intern: %q code %d, want the call as ops", got, code)
	}

	// Audit: 7 calls reached the gateway (2 echo, fail, no grant, unknown
	// service, 2 forged); the unknown edge never did.
	var recs []contract.AuditRecord
	tethertest.WaitFor(t, 10*time.Second, func() error {
		recs = auditRecords(t, f)
		if len(recs) != 7 {
			return fmt.Errorf("%d audit records, want 7: %+v", len(recs), recs)
		}
		return nil
	})
	byCaller := map[string]int{}
	for _, r := range recs {
		byCaller[r.Caller.Name+"/"+r.Status]++
		if r.Edge != "plant-7" || r.Caller.Account == "" || r.Caller.User == "" {
			t.Errorf("audit record without edge or caller keys: %+v", r)
		}
	}
	if want := map[string]int{"ops/ok": 3, "ops/error": 2, "intern/error": 2}; fmt.Sprint(byCaller) != fmt.Sprint(want) {
		t.Errorf("audit by caller = %v, want %v", byCaller, want)
	}

	// Offline: the edge stops; a call fails within 1s, saying so.
	if err := f.edge.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		text, code, took := call(t, f.ops, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "x"))
		if code != contract.CodeEdgeOffline || took > time.Second {
			return fmt.Errorf("offline edge: code %d (%q) after %s, want %d within 1s", code, text, took, contract.CodeEdgeOffline)
		}
		return nil
	})
}

// TestServiceRateLimit: a burst above the grant's rate gets the limit
// error for the excess only, and a forged caller header does not get
// around the limit.
func TestServiceRateLimit(t *testing.T) {
	f := startSvcFabric(t, policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "ops"}, Service: "echo", Endpoint: "echo", Rate: 0.5, Burst: 5},
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "intern"}, Service: "echo", Endpoint: "echo", Rate: 0.5, Burst: 5},
	}})
	startEcho(t, f.edge.ClientURL())
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "b")
			if i%2 == 1 { // half claim to be intern: still ops' bucket
				m.Header.Set(contract.HeaderCaller, `{"kind":"user","name":"intern"}`)
			}
			_, code, _ := call(t, f.ops, m)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[0] != 5 || codes[contract.CodeRateLimited] != 7 || len(codes) != 2 {
		t.Errorf("12 calls at burst 5: codes %v, want 5 ok and 7 rate limited, nothing else", codes)
	}
	// intern's own bucket is untouched.
	if _, code, _ := call(t, f.intern, svcMsg(contract.CloudServiceSubject("plant-7", "echo", "echo"), "x")); code != 0 {
		t.Errorf("intern after ops' burst: code %d, want 0", code)
	}
}

// TestServiceDiscovery: a service started at the edge shows up in the
// fleet's service table within seconds, online; when the edge goes away
// it shows offline.
func TestServiceDiscovery(t *testing.T) {
	f := startSvcFabric(t, policy.Gateway{Edge: "plant-7", Expose: []string{"echo", "clock"}})
	startEcho(t, f.edge.ClientURL())
	list := func() contract.ServiceListReply {
		resp, err := f.ops.Request(contract.ServiceList, []byte(`{"edge":"plant-7"}`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r contract.ServiceListReply
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		r := list()
		if len(r.Services) != 1 || r.Services[0].Name != "echo" || !r.Services[0].Online || r.Services[0].Version != "1.2.0" ||
			fmt.Sprint(r.Services[0].Endpoints) != "[echo fail]" {
			return fmt.Errorf("service table %+v, want echo 1.2.0 [echo fail] online", r)
		}
		return nil
	})
	// A second service comes and goes.
	nc := tethertest.Connect(t, f.edge.ClientURL())
	clock, err := micro.AddService(nc, micro.Config{Name: "clock", Version: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	_ = clock.AddEndpoint("now", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte(time.Now().String())) }))
	names := func(r contract.ServiceListReply) string {
		var n []string
		for _, s := range r.Services {
			n = append(n, s.Name)
		}
		return fmt.Sprint(n)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if got := names(list()); got != "[clock echo]" {
			return fmt.Errorf("services %s, want [clock echo]", got)
		}
		return nil
	})
	if err := clock.Stop(); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if got := names(list()); got != "[echo]" {
			return fmt.Errorf("services %s after clock stopped, want [echo]", got)
		}
		return nil
	})
	if err := f.edge.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		r := list()
		if len(r.Services) != 1 || r.Services[0].Online {
			return fmt.Errorf("service table %+v, want echo offline", r)
		}
		return nil
	})
}
