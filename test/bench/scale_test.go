//go:build bench

// Scale (issue 3): many edge accounts pushed to a 3-hub cluster, and many
// real leaf connections attached at once. Run (about 2.5 min on 2 cores
// when every leaf links; a leaf that never links adds the 5 min wait):
//
//	go test -tags bench -run '^TestBenchScale$' -count=1 -v -timeout 30m ./test/bench
//
// TETHER_SCALE_EDGES (default 1000), TETHER_SCALE_LEAVES (default 200),
// TETHER_SCALE_PROCS (default 4: processes the leaves are spread over) and
// TETHER_SCALE_CONSUMERS (all, linked or none; default all: the command
// consumer that 'tether edge add --push' creates per edge) change the
// run; TETHER_SCALE_MD=<file> also writes the table as Markdown.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

const (
	// scaleChildEnv names a leafChildSpec file: set, TestBenchScale runs
	// the leaves it lists in this process instead of the benchmark.
	scaleChildEnv = "TETHER_SCALE_CHILD"
	// scaleSettle is the window between a phase's end and the RSS reading:
	// a workload (the processes run idle), not a synchronization.
	scaleSettle = 3 * time.Second
	scaleHubs   = 3
)

// leafChildSpec is what one child process runs: one leaf.Server per bundle.
type leafChildSpec struct {
	Bundles []string `json:"bundles"`
}

// scaleHub is one `tether hub` process of the cluster.
type scaleHub struct {
	name    string
	proc    *process
	client  string // TLS client URL
	monitor string // http://host:port
	dataDir string
}

// varz is the part of /varz the benchmark reads.
type varz struct {
	Routes    int `json:"routes"`
	Leafnodes int `json:"leafnodes"`
}

func TestBenchScale(t *testing.T) {
	if spec := os.Getenv(scaleChildEnv); spec != "" {
		runLeafChild(t, spec)
		return
	}
	nEdges := envInt(t, "TETHER_SCALE_EDGES", 1000)
	nLeaves := envInt(t, "TETHER_SCALE_LEAVES", 200)
	nProcs := min(envInt(t, "TETHER_SCALE_PROCS", 4), nLeaves)
	consumers := os.Getenv("TETHER_SCALE_CONSUMERS")
	switch consumers {
	case "":
		consumers = "all"
	case "all", "linked", "none":
	default:
		t.Fatalf("TETHER_SCALE_CONSUMERS=%q: want all, linked or none", consumers)
	}
	if nLeaves > nEdges {
		t.Fatalf("TETHER_SCALE_LEAVES=%d > TETHER_SCALE_EDGES=%d: every leaf needs its own edge", nLeaves, nEdges)
	}
	began, loadBefore := time.Now(), loadAvg()
	var tab scaleTable
	mark := func(what string) { t.Logf("%s: %s since start", what, fmtSpan(time.Since(began))) }
	tab.addf("run", "edges", "%d edges, %d leaves in %d processes, command consumers: %s", nEdges, nLeaves, nProcs, consumers)

	dir := t.TempDir()
	bin, size := buildBinary(t, dir)
	mark("binary built")
	tab.addf("binary", "static binary", "%s", fmtBytes(size))

	// 1. Store and cluster. The leafnode, route and monitor ports are
	// picked first: the store records the hubs' leafnode URLs (so
	// store.Bundle points every edge at all three hubs) and every hub must
	// know all routes.
	var leafAddrs, clusterAddrs, monAddrs, routes, hubURLs []string
	for range scaleHubs {
		la, ca := tethertest.FreeAddr(t), tethertest.FreeAddr(t)
		leafAddrs, clusterAddrs = append(leafAddrs, la), append(clusterAddrs, ca)
		monAddrs = append(monAddrs, tethertest.FreeAddr(t))
		routes, hubURLs = append(routes, "tls://"+ca), append(hubURLs, "tls://"+la)
	}
	store, err := accounts.Init(filepath.Join(dir, "store"), accounts.InitOptions{Fabric: accounts.Fabric{
		HubURLs: hubURLs, HubHosts: []string{"127.0.0.1", "localhost"},
	}})
	if err != nil {
		t.Fatalf("init store: %v", err)
	}
	hubs := startScaleCluster(t, bin, store, leafAddrs, clusterAddrs, monAddrs, routes)
	mark("cluster ready")
	var hubNames []string
	for _, h := range hubs {
		hubNames = append(hubNames, h.name)
	}
	idle, cpu := settleRSS(t, "idle", hubs)
	tab.add("cluster", "hub CPU while idle for "+fmtSpan(envDuration(t, "TETHER_SCALE_SETTLE", scaleSettle))+" (share of a core)", cpu)
	tab.add("cluster", "hub RSS at idle (hub-1/2/3)", fmtRSSList(idle))
	tab.add("cluster", "accounts loaded per hub at idle", fmtList(accountCounts(t, hubs)))

	// 2. Edges: create, push, measure.
	cloudBefore := mustAccount(t, store, contract.CloudAccountName)
	names := make([]string, nEdges)
	start := time.Now()
	for i := range names {
		names[i] = fmt.Sprintf("s%04d", i+1)
		if _, err := store.AddEdge(names[i]); err != nil {
			t.Fatalf("add edge %s: %v", names[i], err)
		}
	}
	took := time.Since(start)
	mark("edges created")
	tab.addf("accounts", "create edges in the store", "%s total, %s per edge", fmtSpan(took), fmtSpan(took/time.Duration(nEdges)))

	pushLat, pushFail, pushTook := pushEdges(t, store, hubs[0], hubNames, names)
	mark("accounts pushed")
	tab.addf("accounts", "push to 3 hubs, sequential, total", "%s (%.0f pushes/s), %d failed",
		fmtSpan(pushTook), float64(nEdges)/pushTook.Seconds(), pushFail)
	tab.add("accounts", "push latency until all 3 hubs acked", fmtPercentiles(pushLat))

	for i, h := range hubs {
		files, bytes, blocks := dirSize(t, filepath.Join(h.dataDir, "jwt"))
		tab.addf("accounts", fmt.Sprintf("resolver on disk, %s (jwt/)", hubNames[i]), "%d files, %s (%s allocated)",
			files, fmtBytes(bytes), fmtBytes(blocks))
	}
	pushed, cpu := settleRSS(t, "after the pushes", hubs)
	tab.add("accounts", "hub CPU while idle for "+fmtSpan(envDuration(t, "TETHER_SCALE_SETTLE", scaleSettle))+" (share of a core)", cpu)
	tab.add("accounts", "hub RSS after the pushes", fmtRSSList(pushed))
	tab.add("accounts", "hub RSS delta per pushed account", fmtPerItem(idle, pushed, nEdges))
	tab.add("accounts", "accounts loaded per hub after the pushes", fmtList(accountCounts(t, hubs)))

	cloudAfter := mustAccount(t, store, contract.CloudAccountName)
	same := cloudAfter.JWT == cloudBefore.JWT
	for _, h := range hubs {
		onHub, err := os.ReadFile(filepath.Join(h.dataDir, "jwt", cloudAfter.Pub+".jwt"))
		if err != nil {
			t.Fatalf("CLOUD JWT on %s: %v", h.name, err)
		}
		same = same && strings.TrimSpace(string(onHub)) == cloudBefore.JWT
	}
	if !same {
		t.Errorf("CLOUD account JWT changed with %d edges (store or a hub's resolver): before %d B, after %d B",
			nEdges, len(cloudBefore.JWT), len(cloudAfter.JWT))
	}
	tab.addf("jwt", "CLOUD account JWT, 0 edges -> all edges", "%d B -> %d B (identical bytes in the store and on every hub: %v)",
		len(cloudBefore.JWT), len(cloudAfter.JWT), same)
	exports, imports := describeJWTs(t, cloudAfter.JWT, mustAccount(t, store, contract.EdgeAccountName(names[0])).JWT)
	t.Logf("CLOUD exports (wildcards over the edge name): %s", exports)
	t.Logf("EDGE_%s imports (its own slice only): %s", names[0], imports)
	edgeSizes, userSizes := jwtSizes(t, store, names)
	tab.add("jwt", "edge account JWT (EDGE_<name>)", fmtSizeRange(edgeSizes))
	tab.add("jwt", "leaf user JWT (scoped signer, no own permissions)", fmtSizeRange(userSizes))

	// Command consumers, as 'tether edge add --push' creates them.
	var withConsumer []string
	switch consumers {
	case "all":
		withConsumer = names
	case "linked":
		withConsumer = names[:nLeaves]
	}
	if len(withConsumer) > 0 {
		lat, fail, took := prepareEdges(t, store, hubs[0], withConsumer)
		mark("consumers created")
		tab.addf("consumers", fmt.Sprintf("command consumers (R3) for %d edges, sequential, total", len(withConsumer)),
			"%s (%.0f/s), %d failed", fmtSpan(took), float64(len(withConsumer))/took.Seconds(), fail)
		tab.add("consumers", "consumer create latency", fmtPercentiles(lat))
		prepared, cpu := settleRSS(t, "after the consumers", hubs)
		tab.add("consumers", "hub CPU while idle for "+fmtSpan(envDuration(t, "TETHER_SCALE_SETTLE", scaleSettle))+" (share of a core)", cpu)
		tab.add("consumers", "hub RSS after the consumers", fmtRSSList(prepared))
		tab.add("consumers", "hub RSS delta per consumer", fmtPerItem(pushed, prepared, len(withConsumer)))
		pushed = prepared
	}

	// 3. Leaves attached at once, in nProcs child processes.
	bundleDir := filepath.Join(dir, "bundles")
	if err := os.MkdirAll(bundleDir, 0o700); err != nil {
		t.Fatal(err)
	}
	specs := make([]leafChildSpec, nProcs)
	for i, name := range names[:nLeaves] {
		b, err := store.Bundle(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(bundleDir, name+".bundle")
		if err := sitefile.WriteBundle(path, b); err != nil {
			t.Fatal(err)
		}
		specs[i%nProcs].Bundles = append(specs[i%nProcs].Bundles, path)
	}
	res := attachLeaves(t, hubs, specs, dir)
	mark("leaves linked")
	tab.addf("leaves", fmt.Sprintf("%d leaves: start -> all linked as the hubs see it", nLeaves),
		"%s (leaf servers all started after %s; in %d of %d processes every edge saw its link up, after at most %s)",
		fmtSpan(res.linked), fmtSpan(res.started), res.childrenLinked, len(res.children), fmtSpan(res.edgeLinked))
	tab.addf("leaves", "leaf connections counted (the last one after) / leaf servers that failed to start / start retries",
		"%d (%s) / %d / %d", res.count, fmtSpan(res.lastGain), res.failed, res.retries)
	tab.add("leaves", "leaf connections per hub", fmtList(res.perHub))
	tab.addf("leaves", "leaves whose connect loop stopped retrying, restarted by the link watchdog (as a supervisor would)",
		"%d", res.watchdogRestarts)
	attached, cpu := settleRSS(t, "leaves attached", hubs)
	tab.add("leaves", "hub CPU while idle for "+fmtSpan(envDuration(t, "TETHER_SCALE_SETTLE", scaleSettle))+" (share of a core)", cpu)
	tab.add("leaves", "hub RSS with the leaves attached", fmtRSSList(attached))
	tab.add("leaves", "hub RSS delta per attached leaf (delta / leaves on that hub)", fmtPerHubItem(pushed, attached, res.perHub))
	var sumDelta int64
	for i := range hubs {
		sumDelta += attached[i] - pushed[i]
	}
	tab.addf("leaves", "cluster RSS delta per leaf (sum over the 3 hubs / leaves)", "%s", fmtBytes(sumDelta/int64(nLeaves)))
	tab.add("leaves", "accounts loaded per hub with the leaves attached", fmtList(accountCounts(t, hubs)))
	var childTotal, childBase int64
	var perChild []string
	for _, c := range res.children {
		rss := readRSS(t, c.proc.cmd.Process.Pid)
		childTotal += rss
		childBase += c.baseRSS
		perChild = append(perChild, fmt.Sprintf("%s/%d leaves", fmtBytes(rss), c.n))
	}
	tab.addf("leaves", "child process RSS", "%s", strings.Join(perChild, ", "))
	tab.addf("leaves", "child RSS per leaf (RSS - RSS before the leaves) / leaves", "%s",
		fmtBytes((childTotal-childBase)/int64(nLeaves)))

	// Shutdown: the children first, then the hubs, all at once.
	for _, c := range res.children {
		if _, ok := c.proc.stop(30 * time.Second); !ok {
			t.Errorf("%s did not stop within 30s of SIGINT", c.proc.name)
		}
	}
	downs := make([]string, len(hubs))
	var wg sync.WaitGroup
	for i, h := range hubs {
		wg.Go(func() {
			took, ok := h.proc.stop(2 * time.Minute)
			downs[i] = fmtSpan(took)
			if !ok {
				downs[i] = "> " + downs[i] + " (killed)"
			}
		})
	}
	wg.Wait()
	tab.add("shutdown", "hub SIGINT -> exit, all three at once", strings.Join(downs, " / "))

	loadAfter := loadAvg()
	tab.addf("run", "duration, load average (1 min) before/after", "%s, %s/%s", fmtSpan(time.Since(began)), loadBefore, loadAfter)
	md := tab.markdown()
	t.Logf("scale results:\n%s", md)
	if path := os.Getenv("TETHER_SCALE_MD"); path != "" {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// startScaleCluster runs three `tether hub` processes routed to each other
// and waits until each has its CLOUD streams and routes to the other two.
func startScaleCluster(t *testing.T, bin string, store *accounts.Store, leafAddrs, clusterAddrs, monAddrs, routes []string) []*scaleHub {
	t.Helper()
	var hubs []*scaleHub
	for i := range scaleHubs {
		h := &scaleHub{
			name:    fmt.Sprintf("hub-%d", i+1),
			monitor: "http://" + monAddrs[i],
			dataDir: filepath.Join(t.TempDir(), "hub-data"),
		}
		h.proc = startProcess(t, h.name, bin, "--log-json", "hub", "--name", h.name, "--store", store.Dir(),
			"--data", h.dataDir, "--listen", "127.0.0.1:0", "--leaf-listen", leafAddrs[i],
			"--websocket-listen", "off", "--monitor-listen", monAddrs[i],
			"--cluster-listen", clusterAddrs[i], "--routes", strings.Join(routes, ","))
		hubs = append(hubs, h)
	}
	for _, h := range hubs {
		l := h.proc.waitLog(t, `"hub listening"`, 30*time.Second, hasMsg("hub listening"))
		h.client, _ = l["client"].(string)
	}
	for _, h := range hubs {
		h.proc.waitLog(t, "COMMANDS stream ready", 90*time.Second, func(l map[string]any) bool {
			return l["msg"] == "cloud stream ready" && l["stream"] == "COMMANDS"
		})
		waitFor(t, h.name+": routes to the other hubs", 30*time.Second, func() (bool, string) {
			v, err := getVarz(h)
			if err != nil {
				return false, err.Error()
			}
			return v.Routes >= scaleHubs-1, fmt.Sprintf("%d routes", v.Routes)
		})
	}
	return hubs
}

// pushEdges pushes every edge's account JWT through a system-user
// connection to hub, one after the other, and returns each push's latency
// until every hub acknowledged it.
func pushEdges(t *testing.T, store *accounts.Store, h *scaleHub, hubNames, names []string) ([]time.Duration, int, time.Duration) {
	t.Helper()
	nc, err := fleet.ConnectSystem(store, h.client)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	lat := make([]time.Duration, 0, len(names))
	failed := 0
	start := time.Now()
	for _, name := range names {
		acc := mustAccount(t, store, contract.EdgeAccountName(name))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		res, err := fleet.Push(ctx, nc, acc.JWT, hubNames)
		lat = append(lat, time.Since(t0))
		cancel()
		if err != nil {
			failed++
			if failed <= 5 {
				t.Logf("push %s: %v (%+v)", acc.Name, err, res)
			}
		}
	}
	return lat, failed, time.Since(start)
}

// prepareEdges creates each edge's command consumer through a CLOUD-user
// connection to hub, one after the other.
func prepareEdges(t *testing.T, store *accounts.Store, h *scaleHub, names []string) ([]time.Duration, int, time.Duration) {
	t.Helper()
	nc, err := nats.Connect(h.client, nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()),
		nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect as cloud user: %v", err)
	}
	defer nc.Close()
	lat := make([]time.Duration, 0, len(names))
	failed := 0
	start := time.Now()
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t0 := time.Now()
		err := fleet.PrepareEdge(ctx, nc, name)
		lat = append(lat, time.Since(t0))
		cancel()
		if err != nil {
			failed++
			if failed <= 5 {
				t.Logf("prepare %s: %v", name, err)
			}
		}
	}
	return lat, failed, time.Since(start)
}

// leafChild is one running child process of leaves.
type leafChild struct {
	proc    *process
	n       int
	baseRSS int64 // before its leaves started
}

type attachResult struct {
	started    time.Duration // until the slowest child had started all its leaf servers
	linked     time.Duration // until the hubs counted every started leaf's connection
	edgeLinked time.Duration // until the slowest of childrenLinked saw all its leaves linked
	// childrenLinked counts the children whose leaves all saw their link up.
	childrenLinked int
	// watchdogRestarts counts leaves whose connect loop stopped retrying
	// (nats-server #7615) and that were restarted, as a supervisor would.
	watchdogRestarts int
	failed           int           // leaf servers that did not start (after retries)
	retries          int           // extra start attempts
	count            int           // leaf connections the hubs counted at the end
	lastGain         time.Duration // when the hubs' count last rose
	perHub           []int
	children         []*leafChild
}

// attachLeaves starts one child process per spec (the test binary again,
// running runLeafChild) at once and waits until the hubs count a leaf
// connection for every leaf server that started. It reports a shortfall
// with t.Errorf and returns what it measured.
func attachLeaves(t *testing.T, hubs []*scaleHub, specs []leafChildSpec, dir string) attachResult {
	t.Helper()
	var res attachResult
	var paths []string
	for i, spec := range specs {
		data, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("leaves-%d.json", i+1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	start := time.Now()
	for i, path := range paths {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBenchScale$", "-test.count=1", "-test.timeout=40m")
		cmd.Env = append(os.Environ(), scaleChildEnv+"="+path)
		// The children die with the benchmark even if it is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		res.children = append(res.children, &leafChild{proc: startCmd(t, fmt.Sprintf("leaves-%d", i+1), cmd), n: len(specs[i].Bundles)})
	}
	want := 0
	for _, c := range res.children {
		l := c.proc.waitLog(t, `"leaves started"`, 5*time.Minute, hasMsg("leaves started"))
		base, _ := l["rss_before"].(float64)
		took, _ := l["took_ms"].(float64)
		failed, _ := l["failed"].(float64)
		retries, _ := l["retries"].(float64)
		c.baseRSS = int64(base)
		res.failed += int(failed)
		res.retries += int(retries)
		want += c.n - int(failed)
		res.started = max(res.started, time.Duration(took)*time.Millisecond)
	}
	if res.failed > 0 {
		t.Errorf("%d leaf servers did not start", res.failed)
	}
	var seen string
	deadline := time.Now().Add(5 * time.Minute)
	for {
		total, perHub, err := leafCounts(hubs)
		if err == nil {
			if total > res.count {
				res.lastGain = time.Since(start)
			}
			res.count, res.perHub = total, perHub
			seen = fmt.Sprintf("%d of %d (per hub %v)", total, want, perHub)
		} else {
			seen = err.Error()
		}
		if err == nil && total >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("leaf connections on the hubs: not all within 5m (last: %s); children's warnings:\n%s",
				seen, childWarnings(res.children, 40))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.linked = time.Since(start)
	// The edges sample their link every 100ms: give the children a moment
	// (bounded) to report what the hubs already count.
	for settle := time.Now(); time.Since(settle) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		n := 0
		for _, c := range res.children {
			n += len(c.proc.logLines(hasMsg("leaves linked")))
		}
		if n == len(res.children) {
			break
		}
	}
	for _, c := range res.children {
		for _, l := range c.proc.logLines(hasMsg("leaves linked")) {
			took, _ := l["took_ms"].(float64)
			res.edgeLinked = max(res.edgeLinked, time.Duration(took)*time.Millisecond)
			res.childrenLinked++
		}
		res.watchdogRestarts += len(c.proc.logLines(hasMsg("leaf restarted by the link watchdog")))
	}
	t.Logf("leaves linked: %s after start, %s; %d leaves restarted by the link watchdog", fmtSpan(res.linked), seen, res.watchdogRestarts)
	return res
}

// leafCounts sums the hubs' leaf connections (/varz).
func leafCounts(hubs []*scaleHub) (int, []int, error) {
	total, perHub := 0, make([]int, 0, len(hubs))
	for _, h := range hubs {
		v, err := getVarz(h)
		if err != nil {
			return 0, nil, err
		}
		perHub = append(perHub, v.Leafnodes)
		total += v.Leafnodes
	}
	return total, perHub, nil
}

// childWarnings returns up to n warning and error lines of the children.
func childWarnings(children []*leafChild, n int) string {
	var out []string
	for _, c := range children {
		for _, l := range c.proc.logLines(func(l map[string]any) bool { return l["level"] == "WARN" || l["level"] == "ERROR" }) {
			if len(out) < n {
				b, _ := json.Marshal(l)
				out = append(out, c.proc.name+": "+string(b))
			}
		}
	}
	return strings.Join(out, "\n")
}

// leafStartAttempts bounds how often a child starts a leaf server whose
// Start failed (on a loaded machine, its JetStream setup can time out),
// as a supervisor would restart `tether leaf`.
const leafStartAttempts = 3

// runLeafChild is the child side of attachLeaves: it starts one leaf.Server
// per bundle in specPath, all at once, logs "leaves started" and, once
// every leaf sees its link up, "leaves linked" (JSON on stderr), and runs
// them until SIGINT.
func runLeafChild(t *testing.T, specPath string) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	leafLog := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec leafChildSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	rssBefore := readRSS(t, os.Getpid())
	root := t.TempDir()
	servers := make([]*leaf.Server, len(spec.Bundles))
	var failed, retries, watchdogRestarts atomic.Int32
	var smu sync.Mutex // guards servers: the supervisor replaces a stuck leaf
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range spec.Bundles {
		wg.Go(func() {
			c := leaf.Defaults()
			c.Bundle = b
			c.DataDir = filepath.Join(root, fmt.Sprintf("leaf-%d", i))
			c.Listen = "127.0.0.1:0"
			for attempt := 1; ctx.Err() == nil; attempt++ {
				l, err := leaf.New(c, leafLog)
				if err == nil {
					sctx, cancel := context.WithTimeout(ctx, time.Minute)
					err = l.Start(sctx)
					cancel()
				}
				if err == nil {
					smu.Lock()
					servers[i] = l
					smu.Unlock()
					go superviseLeaf(ctx, log, l, c, leafLog, &smu, &servers[i], &watchdogRestarts)
					return
				}
				if l != nil {
					_ = l.Shutdown(context.Background())
				}
				log.Warn("leaf did not start", "bundle", b, "attempt", attempt, "err", err)
				if attempt == leafStartAttempts {
					failed.Add(1)
					return
				}
				retries.Add(1)
			}
		})
	}
	wg.Wait()
	log.Info("leaves started", "n", len(spec.Bundles), "failed", failed.Load(), "retries", retries.Load(),
		"took_ms", time.Since(start).Milliseconds(), "rss_before", rssBefore, "rss", readRSS(t, os.Getpid()))

	// The edges' own view of their links, until all are up (diagnostics
	// for a shortfall every 15 s), then idle until SIGINT.
	lastReport := time.Now()
	for linked := false; !linked && ctx.Err() == nil; {
		var down []string
		smu.Lock()
		for _, l := range servers {
			if l != nil && !l.Link().Connected {
				down = append(down, l.Edge())
			}
		}
		smu.Unlock()
		switch {
		case len(down) == 0:
			linked = true
			log.Info("leaves linked", "took_ms", time.Since(start).Milliseconds(), "watchdog_restarts", watchdogRestarts.Load())
		case time.Since(lastReport) > 15*time.Second:
			lastReport = time.Now()
			log.Warn("leaves not linked", "n", len(down), "edges", down[:min(len(down), 10)])
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	smu.Lock()
	for _, l := range servers {
		if l != nil {
			wg.Go(func() { _ = l.Shutdown(sctx) })
		}
	}
	smu.Unlock()
	wg.Wait()
}

// superviseLeaf does what 'tether leaf' under systemd or Docker does: when
// the link watchdog reports a connect loop that stopped retrying, the edge
// is stopped and started again (same data dir).
func superviseLeaf(ctx context.Context, log *slog.Logger, l *leaf.Server, c leaf.Config, leafLog *slog.Logger,
	smu *sync.Mutex, slot **leaf.Server, restarts *atomic.Int32) {
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-l.Stuck():
			log.Warn("leaf restarted by the link watchdog", "edge", l.Edge(), "err", err)
			restarts.Add(1)
			_ = l.Shutdown(context.Background())
			next, err := leaf.New(c, leafLog)
			if err == nil {
				err = next.Start(ctx)
			}
			if err != nil {
				log.Warn("leaf did not restart", "edge", l.Edge(), "err", err)
				return
			}
			smu.Lock()
			*slot = next
			smu.Unlock()
			l = next
		}
	}
}

// settleRSS lets the hubs run idle for scaleSettle (TETHER_SCALE_SETTLE
// overrides it), then reads their RSS; it also returns the share of a core
// each hub used during that window.
func settleRSS(t *testing.T, phase string, hubs []*scaleHub) ([]int64, string) {
	t.Helper()
	settle := envDuration(t, "TETHER_SCALE_SETTLE", scaleSettle)
	var cpu0 []time.Duration
	for _, h := range hubs {
		cpu0 = append(cpu0, readCPU(t, h.proc.cmd.Process.Pid))
	}
	start := time.Now()
	for time.Since(start) < settle {
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(start)
	var out []int64
	var cpu []string
	for i, h := range hubs {
		out = append(out, readRSS(t, h.proc.cmd.Process.Pid))
		used := readCPU(t, h.proc.cmd.Process.Pid) - cpu0[i]
		cpu = append(cpu, fmt.Sprintf("%.1f%%", 100*used.Seconds()/took.Seconds()))
	}
	t.Logf("%s: hub RSS %s; CPU while idle for %s: %s of a core", phase, fmtRSSList(out), fmtSpan(took), strings.Join(cpu, " / "))
	return out, strings.Join(cpu, " / ")
}

// readCPU returns the user+system CPU time pid has used.
func readCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read CPU: %v", err)
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, utime 14 and stime 15, in clock ticks (100 per second on
	// Linux).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("parse /proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

var monitorClient = &http.Client{Timeout: 5 * time.Second}

func getMonitor(h *scaleHub, path string, v any) error {
	resp, err := monitorClient.Get(h.monitor + path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", h.name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", h.name, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s %s: %w", h.name, path, err)
	}
	return nil
}

func getVarz(h *scaleHub) (varz, error) {
	var v varz
	return v, getMonitor(h, "/varz", &v)
}

// accountCounts returns how many accounts each hub has loaded in memory
// (/accountz), as opposed to stored in its resolver.
func accountCounts(t *testing.T, hubs []*scaleHub) []int {
	t.Helper()
	var out []int
	for _, h := range hubs {
		var az struct {
			Accounts []string `json:"accounts"`
		}
		if err := getMonitor(h, "/accountz", &az); err != nil {
			t.Fatal(err)
		}
		out = append(out, len(az.Accounts))
	}
	return out
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, d, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustAccount(t *testing.T, store *accounts.Store, name string) accounts.Account {
	t.Helper()
	a, err := store.Account(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dirSize returns the number of regular files under dir, their total size
// and the disk space allocated to them.
func dirSize(t *testing.T, dir string) (files int, size, allocated int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files, size, allocated
}

// describeJWTs lists the CLOUD exports and an edge account's imports.
func describeJWTs(t *testing.T, cloudJWT, edgeJWT string) (exports, imports string) {
	t.Helper()
	cc, err := jwt.DecodeAccountClaims(cloudJWT)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := jwt.DecodeAccountClaims(edgeJWT)
	if err != nil {
		t.Fatal(err)
	}
	var ex, im []string
	for _, e := range cc.Exports {
		ex = append(ex, fmt.Sprintf("%s %s", e.Type, e.Subject))
	}
	for _, i := range ec.Imports {
		im = append(im, fmt.Sprintf("%s %s -> %s", i.Type, i.Subject, i.LocalSubject))
	}
	return strings.Join(ex, "; "), strings.Join(im, "; ")
}

// jwtSizes returns the sizes of every edge's account JWT and leaf user JWT.
func jwtSizes(t *testing.T, store *accounts.Store, names []string) (edge, user []int) {
	t.Helper()
	for _, n := range names {
		edge = append(edge, len(mustAccount(t, store, contract.EdgeAccountName(n)).JWT))
		b, err := store.Bundle(n)
		if err != nil {
			t.Fatal(err)
		}
		ujwt, err := jwt.ParseDecoratedJWT([]byte(b.Creds))
		if err != nil {
			t.Fatal(err)
		}
		user = append(user, len(ujwt))
	}
	return edge, user
}

// scaleTable is the result table: phase | measure | value.
type scaleTable struct{ rows [][3]string }

func (s *scaleTable) add(phase, what, value string) {
	s.rows = append(s.rows, [3]string{phase, what, value})
}

func (s *scaleTable) addf(phase, what, format string, a ...any) {
	s.add(phase, what, fmt.Sprintf(format, a...))
}

func (s *scaleTable) markdown() string {
	var b strings.Builder
	b.WriteString("| phase | measure | value |\n|---|---|---|\n")
	for _, r := range s.rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	return b.String()
}

// fmtBytes formats n in MB (10^6 B) from 1 MB, in kB from 10 kB, else in bytes.
func fmtBytes(n int64) string {
	switch {
	case n >= 10e6 || n <= -10e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e6 || n <= -1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 10e3 || n <= -10e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func fmtRSSList(v []int64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmtBytes(x))
	}
	return strings.Join(s, " / ")
}

func fmtList(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, " / ")
}

// fmtPerItem is (after-before)/n per hub.
func fmtPerItem(before, after []int64, n int) string {
	var s []string
	for i := range before {
		s = append(s, fmtBytes((after[i]-before[i])/int64(n)))
	}
	return strings.Join(s, " / ")
}

// fmtPerHubItem is (after-before)/n[i] per hub.
func fmtPerHubItem(before, after []int64, n []int) string {
	var s []string
	for i := range before {
		if n[i] == 0 {
			s = append(s, fmt.Sprintf("%s (no leaf)", fmtBytes(after[i]-before[i])))
			continue
		}
		s = append(s, fmtBytes((after[i]-before[i])/int64(n[i])))
	}
	return strings.Join(s, " / ")
}

func fmtPercentiles(lat []time.Duration) string {
	s := slices.Clone(lat)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)",
		fmtSpan(p(0.50)), fmtSpan(p(0.90)), fmtSpan(p(0.99)), fmtSpan(s[len(s)-1]), len(s))
}

func fmtSizeRange(v []int) string {
	lo, hi, sum := slices.Min(v), slices.Max(v), 0
	for _, x := range v {
		sum += x
	}
	if lo == hi {
		return fmt.Sprintf("%d B (all %d)", lo, len(v))
	}
	return fmt.Sprintf("%d-%d B, mean %d B (n=%d)", lo, hi, sum/len(v), len(v))
}

// fmtSpan formats d in ms below a second, else in seconds.
func fmtSpan(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
