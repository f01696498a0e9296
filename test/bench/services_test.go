//go:build bench

// Named services (issue 14): a cloud user calls a micro service at an edge
// by name through the hubs' router and the edge's gateway (grant checked,
// rate limiter and in-flight counter on the path, every call audited into
// the edge's disk buffer and forwarded to the cloud), against plain NATS
// request-reply over a hand-configured TLS leaf link with a TLS client
// port (plain-tls, the twin the core bench uses), and against the floor
// of the path's shape with no Tether code (relay_test.go): plain-relay,
// plain-tls with a do-nothing relay client at the edge where the gateway
// is, and plain-2relay, the same with another at the hub where the router
// is, and plain-imports, plain-2relay with the hub's accounts and
// imports of Tether's path. All five in the same run, interleaved. Then discovery with 1,000
// edge accounts on the hub (-run '^TestBenchServices$/^$' skips it).
// TETHER_BENCH_NOAUDIT=1 turns the grant's audit off;
// TETHER_BENCH_CPUPROFILE=<file> writes a CPU profile of each system's
// 32-in-flight run (of the last rep) to <file>.<system>, and
// TETHER_BENCH_SVC_CALLS=<n> makes that run n calls (default 20,000). Run (about 3
// minutes):
//
//	go test -tags bench -run '^TestBenchServices$' -count=1 -v -timeout 30m ./test/bench
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

const (
	svcBenchSeq   = 5_000
	svcBenchTotal = 20_000
)

// startServiceEcho starts a hub and edge e1 whose gateway grants the cloud
// user every service with audit on, a micro echo service at the edge, and
// returns the pair (the requester is the cloud user on
// edges.e1.svc.echo.echo).
func startServiceEcho(t *testing.T, size int) *echo {
	t.Helper()
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	lc := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, edgeName, h))
	lc.Compression = "s2_fast"
	gw, _ := json.Marshal(policy.Gateway{Edge: edgeName, Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "cloud"}, Service: "echo", Endpoint: "*", Audit: os.Getenv("TETHER_BENCH_NOAUDIT") == ""},
	}})
	lc.Gateway = filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(lc.Gateway, gw, 0o600); err != nil {
		t.Fatal(err)
	}
	l := tethertest.RunLeaf(t, lc, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	top := &topology{name: "tether-svc", edgeURL: l.ClientURL(), reqURL: h.ClientURL(),
		reqOpts: []nats.Option{nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile())}}
	e := &echo{top: top, resp: connect(t, top.edgeURL), req: connect(t, top.reqURL, top.reqOpts...),
		payload: randomPayload(size), subject: contract.CloudServiceSubject(edgeName, "echo", "echo")}
	svc, err := micro.AddService(e.resp, micro.Config{Name: "echo", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) })); err != nil {
		t.Fatal(err)
	}
	if err := e.resp.Flush(); err != nil { // the endpoint is subscribed before the first call
		t.Fatal(err)
	}
	call := func() error {
		m, err := e.request()
		if err == nil && m.Header.Get(contract.HeaderServiceErrorCode) != "" {
			err = fmt.Errorf("%s", m.Header.Get(contract.HeaderServiceError))
		}
		return err
	}
	// The gateway's interest in the edge's calls crosses the link after
	// the link is up: until then the router answers that the edge is
	// offline.
	tethertest.WaitFor(t, 10*time.Second, call)
	for i := range 200 { // caches are warm
		if err := call(); err != nil {
			t.Fatalf("warm-up call %d: %v", i, err)
		}
	}
	return e
}

// svcSystems are the systems of TestBenchServices, in table order.
var svcSystems = []string{"tether-svc", "plain-tls", "plain-relay", "plain-2relay", "plain-imports"}

func TestBenchServices(t *testing.T) {
	reps := defaultReps
	if v, err := strconv.Atoi(os.Getenv("TETHER_BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	total := svcBenchTotal
	if v, err := strconv.Atoi(os.Getenv("TETHER_BENCH_SVC_CALLS")); err == nil && v >= reqInflight {
		total = v
	}
	t.Logf("GOMAXPROCS %d, %d reps, %d calls in flight runs, load average %s", runtime.GOMAXPROCS(0), reps, total, loadAvg())
	n := len(svcSystems)
	p50s, p99s, rps, cpus := make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
	for rep := range reps {
		pairs := []*echo{
			startServiceEcho(t, reqSize),
			startEcho(t, startPlainTLS(t, "s2_fast"), reqSize),
			startRelayEcho(t, "plain-relay", edgeRelay, reqSize),
			startRelayEcho(t, "plain-2relay", twoRelays, reqSize),
			startRelayEcho(t, "plain-imports", twoRelaysImports, reqSize),
		}
		lat := measureLatency(t, pairs, svcBenchSeq)
		for j, e := range pairs {
			t.Logf("rep %d %-12s call 128 B: p50 %s p99 %s, errors %d", rep+1, e.top.name, lat[j].p50, lat[j].p99, lat[j].errors)
			p50s[j] = append(p50s[j], float64(lat[j].p50.Microseconds()))
			p99s[j] = append(p99s[j], float64(lat[j].p99.Microseconds()))
		}
		if rep%2 == 1 {
			slices.Reverse(pairs)
		}
		for _, e := range pairs {
			stop := profileCatchUp(t, e.top.name)
			cpu0 := processCPU()
			rate, failed := measureInflight(e, total, reqInflight)
			perCall := (processCPU() - cpu0) / time.Duration(total)
			stop()
			t.Logf("rep %d %-12s call 128 B: %s req/s with %d in flight, errors %d, process CPU %s per call",
				rep+1, e.top.name, fmtRate(rate), reqInflight, failed, perCall)
			j := slices.Index(svcSystems, e.top.name)
			rps[j] = append(rps[j], rate)
			cpus[j] = append(cpus[j], float64(perCall.Microseconds()))
			e.close()
		}
	}
	md := "| workload | tether (router + gateway + audit) | plain NATS TLS leaf | plain-relay (+ edge relay) | plain-2relay (+ hub relay) | plain-imports (+ hub accounts, imports) " +
		"| tether/plain | relay/plain | 2relay/plain | imports/plain | tether/2relay | tether/imports | goal (tether/plain) |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
	for _, r := range []struct {
		name, goal string
		v          [][]float64
		rate       bool
	}{
		{"call 128 B, sequential: p50 (µs)", "<= 1.2x", p50s, false},
		{"call 128 B, sequential: p99 (µs)", "<= 1.5x", p99s, false},
		{fmt.Sprintf("call 128 B, %d in flight (req/s)", reqInflight), ">= 0.8x", rps, true},
		{"CPU per call, all servers and clients of the run (µs)", "-", cpus, false},
	} {
		m := make([]float64, n)
		for j := range m {
			m[j] = median(r.v[j])
		}
		f := func(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) }
		if r.rate {
			f = fmtRate
		}
		md += fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %s |\n",
			r.name, f(m[0]), f(m[1]), f(m[2]), f(m[3]), f(m[4]), m[0]/m[1], m[2]/m[1], m[3]/m[1], m[4]/m[1], m[0]/m[3], m[0]/m[4], r.goal)
	}
	md += fmt.Sprintf("\nMedians of %d reps; %s, GOMAXPROCS %d, load average %s at the end.\n", reps, runtime.Version(), runtime.GOMAXPROCS(0), loadAvg())
	t.Log("\n" + md)
	if p := os.Getenv("TETHER_BENCH_SVC_MD"); p != "" {
		_ = os.WriteFile(p, []byte(md), 0o644)
	}
	t.Run("discovery-1000-edges", benchDiscovery)
}

// benchDiscovery: 1,000 edge accounts in the store and on the hub, one
// linked edge exposing every service: how long a micro service started at
// the edge takes to show in the fleet's service table, how long the table
// takes to answer, and what the hub stores per exposed service (the
// edge's status report, the last one per edge, in EDGE_STATUS).
func benchDiscovery(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	start := time.Now()
	for i := range 999 {
		if _, err := store.AddEdge(fmt.Sprintf("x%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("999 more edge accounts made in %s", time.Since(start).Round(time.Millisecond))
	lc := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, edgeName, h))
	gw, _ := json.Marshal(policy.Gateway{Edge: edgeName, Expose: []string{"*"}})
	lc.Gateway = filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(lc.Gateway, gw, 0o600); err != nil {
		t.Fatal(err)
	}
	l := tethertest.RunLeaf(t, lc, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	cloud := connect(t, h.ClientURL(), nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()))
	defer cloud.Close()
	site := connect(t, l.ClientURL())
	defer site.Close()
	list := func() (contract.ServiceListReply, time.Duration) {
		t0 := time.Now()
		resp, err := cloud.Request(contract.ServiceList, nil, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r contract.ServiceListReply
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r, time.Since(t0)
	}
	reportSize := func() int {
		resp, err := cloud.Request("$JS.hub.API.DIRECT.GET.EDGE_STATUS.edges."+edgeName+".status", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Data)
	}
	var found []time.Duration
	var lsLat []time.Duration
	size0 := 0
	const services = 20
	for i := range services {
		if i == 0 {
			tethertest.WaitFor(t, 10*time.Second, func() error {
				if r, _ := list(); r.Error != "" {
					return fmt.Errorf("%s", r.Error)
				}
				if size0 = reportSize(); size0 == 0 {
					return fmt.Errorf("no status report from the edge yet")
				}
				return nil
			})
		}
		name := fmt.Sprintf("s%02d", i)
		svc, err := micro.AddService(site, micro.Config{Name: name, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		_ = svc.AddEndpoint("get", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(nil) }))
		t0 := time.Now()
		tethertest.WaitFor(t, 20*time.Second, func() error {
			r, took := list()
			lsLat = append(lsLat, took)
			for _, s := range r.Services {
				if s.Name == name && s.Online {
					return nil
				}
			}
			return fmt.Errorf("%s not in the table yet", name)
		})
		found = append(found, time.Since(t0))
	}
	size1 := reportSize()
	slices.Sort(found)
	slices.Sort(lsLat)
	t.Logf("\n| 1,000 edge accounts, 1 linked edge | value |\n|---|---|\n"+
		"| service started at the edge -> in 'svc ls' (p50 / max of %d) | %s / %s |\n"+
		"| 'svc ls' answer time (p50 / max of %d) | %s / %s |\n"+
		"| status report stored per edge: 0 services / %d services | %d B / %d B (%d B per service) |\n",
		len(found), found[len(found)/2].Round(time.Millisecond), found[len(found)-1].Round(time.Millisecond),
		len(lsLat), lsLat[len(lsLat)/2].Round(time.Microsecond), lsLat[len(lsLat)-1].Round(time.Microsecond),
		services, size0, size1, (size1-size0)/services)
}
