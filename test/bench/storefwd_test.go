//go:build bench

// Store-and-forward benchmarks, in the same run, medians of 3 (issue
// "store-and-forward"). Run (about 7 minutes on 2 cores):
//
//	go test -tags bench -run '^TestBenchStoreForward$' -count=1 -v -timeout 20m ./test/bench
//
// TETHER_BENCH_REPS=<n> changes the number of repetitions (default 3),
// TETHER_BENCH_BACKLOG=<n> the backlog of the catch-up test (default
// 200000), TETHER_BENCH_OUTAGE=<duration> how long its link stays cut at
// least (default 30s), TETHER_BENCH_SF_MD=<file> also writes the table as
// Markdown, TETHER_BENCH_LOGS=<dir> writes the Tether hub and leaf logs
// there and TETHER_BENCH_CPUPROFILE=<file> CPU profiles of the catch-up
// and online runs to <file>.<run>.
// See doc.go for what runs and docs/BENCHMARKS.md for the figures.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// Store-and-forward workloads and their bounds.
const (
	// backlogCount x backlogSize is buffered on the edge while its link is
	// cut (TETHER_BENCH_BACKLOG overrides the count).
	backlogCount = 200_000
	backlogSize  = 256
	// backlogOutage is how long the link stays cut at least (the
	// workload, not a synchronization; TETHER_BENCH_OUTAGE overrides): an
	// outage longer than nats-server's source health check (10 s), after
	// which a sourcing hub asks the edge for a new consumer and waits up
	// to 30 s for the answer.
	backlogOutage = 30 * time.Second
	// edgeInflight is how many async publishes may await the edge's PubAck.
	edgeInflight = 256
	// healFirstBound bounds the wait for the first message after the heal;
	// DESIGN.md saw plain sourcing resume only after ~40 s.
	healFirstBound = 90 * time.Second
	// catchupStall ends a catch-up that made no progress for that long;
	// catchupBound ends any catch-up.
	catchupStall = 30 * time.Second
	catchupBound = 5 * time.Minute
	// cloudPoll is how often the cloud stream's state is read during a
	// catch-up: the resolution of its times.
	cloudPoll = 5 * time.Millisecond
	// Edge-local durability runs: at most this many messages or this
	// long, whichever comes first.
	durAsyncCount = 100_000
	durSyncCount  = 20_000
	durRunBound   = 4 * time.Second
	durSize       = 256
	// onlineCount messages cross a healthy link in the online run.
	onlineCount = 100_000
)

// sfRow is one line of the store-and-forward table: samples of system A
// and of system B, whose names are part of the workload text.
type sfRow struct {
	name   string
	a, b   string // system names
	unit   string
	format func(float64) string
	goal   string
	// ok judges the medians; nil for no verdict.
	ok        func(a, b float64) bool
	av, bv    []float64
	lost, dup [2]int
	noRatio   bool
}

func (r *sfRow) addA(v float64, lost, dup int) {
	r.av = append(r.av, v)
	r.lost[0] += lost
	r.dup[0] += dup
}

func (r *sfRow) addB(v float64, lost, dup int) {
	r.bv = append(r.bv, v)
	r.lost[1] += lost
	r.dup[1] += dup
}

func fmtSeconds(v float64) string { return fmt.Sprintf("%.2f s", v) }
func fmtPercent(v float64) string { return fmt.Sprintf("%.2f %%", v) }

func TestBenchStoreForward(t *testing.T) {
	reps := envInt(t, "TETHER_BENCH_REPS", defaultReps)
	backlog := envInt(t, "TETHER_BENCH_BACKLOG", backlogCount)
	outage := envDuration(t, "TETHER_BENCH_OUTAGE", backlogOutage)
	began, loadBefore := time.Now(), loadAvg()
	var rows []*sfRow
	var notes []string

	t.Run("backlog", func(t *testing.T) {
		r, n := benchBacklog(t, reps, backlog, outage)
		rows, notes = append(rows, r...), append(notes, n...)
	})
	t.Run("online", func(t *testing.T) {
		rows = append(rows, benchOnline(t, reps)...)
	})
	t.Run("durability", func(t *testing.T) {
		rows = append(rows, benchDurability(t, reps)...)
	})
	t.Run("mosquitto", func(t *testing.T) {
		r, n := benchMosquitto(t, reps)
		rows, notes = append(rows, r...), append(notes, n...)
	})

	table := renderSFTable(rows, notes, reps, time.Since(began), loadBefore, loadAvg())
	fmt.Println()
	fmt.Println(table)
	if path := os.Getenv("TETHER_BENCH_SF_MD"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// envDuration reads a duration >= 0 from the environment, or returns def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 30s", name, v)
	}
	return d
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// sfTopo is one edge whose link to the cloud runs through a proxy, and the
// cloud stream that receives what the edge publishes on telemetry.>.
type sfTopo struct {
	name    string
	edgeURL string
	proxy   *netproxy.Proxy
	// linked reports whether the edge sees its link up.
	linked func() bool
	// cloud connects to the hub; cloudJS opens its JetStream API.
	cloud   func(t *testing.T) *nats.Conn
	cloudJS func(nc *nats.Conn) (jetstream.JetStream, error)
	// stream is the cloud stream, subject where telemetry.x lands in it.
	stream, subject string
	// diag describes the edge's own view for a stalled run (optional).
	diag func() string
}

func (top *sfTopo) describe() string {
	if top.diag == nil {
		return ""
	}
	return "; edge: " + top.diag()
}

// startTetherSF starts a Tether hub and an edge whose link dials the hub
// through a proxy, with the edge's default configuration (s2_fast, sync
// interval 1s) but a 250ms reconnect interval, as the plain twin.
func startTetherSF(t *testing.T) *sfTopo {
	t.Helper()
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), benchLog(t, "hub"))
	tethertest.AddEdge(t, store, edgeName, h)
	p, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, edgeName, []string{"tls://" + p.Addr()}, nil))
	l := tethertest.RunLeaf(t, cfg, benchLog(t, "leaf"))
	tethertest.WaitLinked(t, l, 10*time.Second)
	return &sfTopo{
		name:    "tether",
		edgeURL: l.ClientURL(),
		proxy:   p,
		linked:  func() bool { return l.Link().Connected },
		cloud: func(t *testing.T) *nats.Conn {
			return connect(t, h.ClientURL(), nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()))
		},
		cloudJS: func(nc *nats.Conn) (jetstream.JetStream, error) {
			return jetstream.NewWithDomain(nc, contract.CloudDomain)
		},
		stream:  contract.TelemetryStream,
		subject: "edges." + edgeName + ".telemetry.x",
		diag: func() string {
			b, _ := json.Marshal(l.Status())
			return string(b)
		},
	}
}

// startPlainSF starts the plain twin: hub (JetStream domain hub) and leaf
// (domain edge-e1, sync interval 1s) over a TLS leaf link through a proxy,
// s2_fast, an edge Limits stream on telemetry.> and a hub stream sourcing
// it, created before any cut.
func startPlainSF(t *testing.T) *sfTopo {
	t.Helper()
	var p *netproxy.Proxy
	h, edge := startPlainPair(t, "plain-sf", "s2_fast", plainOpts{js: true, proxy: &p})
	createPlainDurableStreams(t, h, edge)
	return &sfTopo{
		name:    "plain",
		edgeURL: edge.ClientURL(),
		proxy:   p,
		linked:  func() bool { return edge.NumLeafNodes() > 0 },
		cloud:   func(t *testing.T) *nats.Conn { return connect(t, h.ClientURL()) },
		cloudJS: func(nc *nats.Conn) (jetstream.JetStream, error) { return jetstream.New(nc) },
		stream:  "TELEMETRY",
		subject: "edges." + edgeName + ".telemetry.x",
	}
}

// backlogResult is one cut-buffer-heal run.
type backlogResult struct {
	pubRate float64 // edge publishes acknowledged per second, link cut
	// first and all are the times from the heal to the first and to the
	// last message in the cloud stream; first < 0: none within
	// healFirstBound; all < 0: not all arrived.
	first, all time.Duration
	rate       float64 // catch-up msg/s, first message to all (or to the last arrival)
	// cpuPerMsg is the whole process's CPU time from the heal to the end
	// of the catch-up per message that arrived: less sensitive to other
	// load on a shared machine than the rate.
	cpuPerMsg time.Duration
	stored    int // messages in the cloud stream (probe excluded)
	lost, dup int
}

// measureBacklog proves the path with a probe, cuts the link, buffers
// count acknowledged messages of size bytes on the edge, keeps the link cut
// for at least outage, heals it and times the catch-up by the cloud
// stream's state; then it reads the cloud stream to count lost and
// duplicated messages.
func measureBacklog(t *testing.T, top *sfTopo, count, size int, outage time.Duration) backlogResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), catchupBound+5*time.Minute)
	defer cancel()
	enc := connect(t, top.edgeURL)
	defer enc.Close()
	ejs, err := jetstream.New(enc, jetstream.WithPublishAsyncMaxPending(2*edgeInflight))
	if err != nil {
		t.Fatal(err)
	}
	cnc := top.cloud(t)
	defer cnc.Close()
	cjs, err := top.cloudJS(cnc)
	if err != nil {
		t.Fatal(err)
	}
	var str jetstream.Stream
	tethertest.WaitFor(t, 10*time.Second, func() error {
		str, err = cjs.Stream(ctx, top.stream)
		return err
	})
	stored := func() (uint64, error) {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		defer rcancel()
		info, err := str.Info(rctx)
		if err != nil {
			return 0, err
		}
		return info.State.Msgs, nil
	}

	// The path works: a probe is stored in the cloud.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = ejs.Publish(pctx, "telemetry.probe", []byte("probe"))
	pcancel()
	if err != nil {
		t.Fatalf("%s: probe: %v", top.name, err)
	}
	var base uint64
	tethertest.WaitFor(t, 30*time.Second, func() error {
		n, err := stored()
		if err == nil && n == 0 {
			err = errors.New("probe not in the cloud stream yet")
		}
		base = n
		return err
	})

	top.proxy.SetMode(netproxy.Cut)
	cutAt := time.Now()
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if top.linked() {
			return errors.New("link still up after the cut")
		}
		return nil
	})
	pub, err := publishAcked(ctx, ejs, "telemetry.x", size, count, edgeInflight, 0)
	if err != nil || pub.acked != count {
		t.Fatalf("%s: edge acknowledged %d of %d: %v", top.name, pub.acked, count, err)
	}
	res := backlogResult{pubRate: float64(pub.acked) / pub.elapsed.Seconds(), first: -1, all: -1}
	if n, err := stored(); err != nil || n != base {
		t.Fatalf("%s: the cut leaks: cloud stream holds %d (was %d) before the heal (err %v)", top.name, n, base, err)
	}
	// The outage itself: a duration of the workload.
	time.Sleep(time.Until(cutAt.Add(outage)))

	stopProfile := profileCatchUp(t, top.name)
	top.proxy.SetMode(netproxy.Pass)
	healed, cpuHealed := time.Now(), processCPU()
	var firstAt, lastAt time.Time
	last := base
	tick := time.NewTicker(cloudPoll)
	defer tick.Stop()
	for {
		n, err := stored()
		now := time.Now()
		if err == nil && n > last {
			last, lastAt = n, now
			if firstAt.IsZero() {
				firstAt = now
				res.first = now.Sub(healed)
			}
		}
		if last >= base+uint64(count) {
			res.all = now.Sub(healed)
			break
		}
		if firstAt.IsZero() && now.Sub(healed) > healFirstBound {
			t.Logf("%s: nothing reached the cloud within %s of the heal", top.name, healFirstBound)
			break
		}
		if !firstAt.IsZero() && now.Sub(lastAt) > catchupStall {
			t.Logf("%s: catch-up stalled for %s at %d of %d%s", top.name, catchupStall, last-base, count, top.describe())
			break
		}
		if now.Sub(healed) > catchupBound {
			t.Logf("%s: catch-up not done after %s: %d of %d", top.name, catchupBound, last-base, count)
			break
		}
		<-tick.C
	}
	if !firstAt.IsZero() && lastAt.After(firstAt) {
		res.rate = float64(last-base) / lastAt.Sub(firstAt).Seconds()
	}
	if last > base {
		res.cpuPerMsg = (processCPU() - cpuHealed) / time.Duration(last-base)
	}
	stopProfile()
	res.stored, res.lost, res.dup = verifyCloud(t, ctx, cjs, top, count)
	return res
}

// verifyCloud reads every telemetry.x message from the cloud stream and
// counts what is missing of indices 0..count-1 and what came twice.
func verifyCloud(t *testing.T, ctx context.Context, js jetstream.JetStream, top *sfTopo, count int) (stored, lost, dup int) {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, top.stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{top.subject}})
	if err != nil {
		t.Fatalf("%s: read cloud stream: %v", top.name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("%s: read cloud stream: %v", top.name, err)
	}
	want := int(info.NumPending)
	a := newArrivals(count)
	deadline := time.Now().Add(2 * time.Minute)
	for int(a.total.Load()) < want && time.Now().Before(deadline) {
		batch, err := cons.Fetch(2000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("%s: read cloud stream: %v", top.name, err)
		}
		for m := range batch.Messages() {
			a.add(m.Data())
		}
	}
	if got := int(a.total.Load()); got != want {
		t.Errorf("%s: read %d of %d messages back from the cloud stream", top.name, got, want)
	}
	return want, count - int(a.distinct.Load()), int(a.dups.Load() + a.foreign.Load())
}

// ackedResult is a run of JetStream publishes on the edge.
type ackedResult struct {
	acked   int
	elapsed time.Duration
}

// publishAcked publishes count messages of size bytes (payload index i
// first) on subject and waits for each PubAck; with inflight > 0 up to
// inflight publishes await their ack, else one by one. bound > 0 ends the
// run after that long.
func publishAcked(ctx context.Context, js jetstream.JetStream, subject string, size, count, inflight int, bound time.Duration) (ackedResult, error) {
	tmpl := randomPayload(size)
	var res ackedResult
	start := time.Now()
	done := func() ackedResult { res.elapsed = time.Since(start); return res }
	if inflight == 0 {
		for i := range count {
			if bound > 0 && time.Since(start) > bound {
				break
			}
			if _, err := js.Publish(ctx, subject, indexed(tmpl, i)); err != nil {
				return done(), fmt.Errorf("publish %d: %w", i, err)
			}
			res.acked++
		}
		return done(), nil
	}
	futs := make([]jetstream.PubAckFuture, inflight)
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			res.acked++
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sent := 0
	for i := range count {
		if bound > 0 && i%64 == 0 && time.Since(start) > bound {
			break
		}
		if f := futs[i%inflight]; f != nil {
			if err := wait(f); err != nil {
				return done(), fmt.Errorf("publish %d: %w", i-inflight, err)
			}
		}
		f, err := js.PublishAsync(subject, indexed(tmpl, i))
		if err != nil {
			return done(), fmt.Errorf("publish %d: %w", i, err)
		}
		futs[i%inflight] = f
		sent++
	}
	for i := max(0, sent-inflight); i < sent; i++ {
		if err := wait(futs[i%inflight]); err != nil {
			return done(), fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return done(), nil
}

// indexed returns a copy of tmpl whose first 8 bytes are i in decimal.
func indexed(tmpl []byte, i int) []byte {
	b := slices.Clone(tmpl)
	copy(b, fmt.Sprintf("%08d", i))
	return b
}

// arrivals counts messages whose payload starts with an 8-digit index
// below n; payloads starting with "probe-<k>" count as probes of phase k.
// One goroutine adds; anyone reads.
type arrivals struct {
	seen                    []bool
	total, distinct, dups   atomic.Int64
	foreign                 atomic.Int64
	probes                  [4]atomic.Int64
	firstNano, lastNano     atomic.Int64
	prog                    chan struct{}
	progressEvery, sinceSig int
}

func newArrivals(n int) *arrivals {
	return &arrivals{seen: make([]bool, n), prog: make(chan struct{}, 1), progressEvery: 100}
}

func (a *arrivals) add(p []byte) {
	if k, ok := strings.CutPrefix(string(p[:min(len(p), 8)]), "probe-"); ok {
		if i, err := strconv.Atoi(k[:1]); err == nil && i < len(a.probes) {
			a.probes[i].Add(1)
		}
		a.signal()
		return
	}
	now := time.Now().UnixNano()
	a.firstNano.CompareAndSwap(0, now)
	a.lastNano.Store(now)
	a.total.Add(1)
	i, err := strconv.Atoi(string(p[:min(len(p), 8)]))
	switch {
	case err != nil || len(p) < 8 || i < 0 || i >= len(a.seen):
		a.foreign.Add(1)
	case a.seen[i]:
		a.dups.Add(1)
	default:
		a.seen[i] = true
		a.distinct.Add(1)
	}
	if a.sinceSig++; a.sinceSig >= a.progressEvery {
		a.sinceSig = 0
		a.signal()
	}
}

func (a *arrivals) signal() {
	select {
	case a.prog <- struct{}{}:
	default:
	}
}

// benchBacklog runs the catch-up test on Tether and the plain twin,
// alternating, each run on fresh servers.
func benchBacklog(t *testing.T, reps, count int, outage time.Duration) ([]*sfRow, []string) {
	n := fmtCount(count)
	pubRow := &sfRow{name: fmt.Sprintf("backlog %s x %d B, link cut for %s: edge JetStream publish, %d in flight", n, backlogSize, outage, edgeInflight),
		a: "tether", b: "plain", unit: "msg/s", format: fmtRate, goal: "-"}
	firstRow := &sfRow{name: "heal -> first message in the cloud stream (lower is better)", a: "tether", b: "plain", format: fmtSeconds, goal: "-"}
	rateRow := &sfRow{name: fmt.Sprintf("catch-up rate, first message -> all %s in the cloud stream", n),
		a: "tether", b: "plain", unit: "msg/s", format: fmtRate, goal: ">= 0.9x", ok: atLeast(0.9)}
	allRow := &sfRow{name: fmt.Sprintf("heal -> all %s in the cloud stream (lower is better)", n), a: "tether", b: "plain", format: fmtSeconds, goal: "-"}
	// The forwarder alone against plain: what the design costs without
	// Tether's per-edge accounts (startForwarderSF).
	fwdRow := &sfRow{name: "same catch-up rate, Tether's forwarder alone (plain servers, no accounts, no service import)",
		a: "forwarder", b: "plain", unit: "msg/s", format: fmtRate, goal: "-"}
	var perRun [3][]string
	for rep := range reps {
		for _, sys := range sfSystems(rep) {
			var r backlogResult
			name := sys.name
			// A subtest per run: its servers stop at its end.
			if !t.Run(fmt.Sprintf("rep%d-%s", rep+1, name), func(t *testing.T) {
				r = measureBacklog(t, sys.start(t), count, backlogSize, outage)
			}) {
				t.Fatalf("backlog run %d (%s) failed", rep+1, name)
			}
			first, all := r.first.Seconds(), r.all.Seconds()
			if r.first < 0 {
				first = healFirstBound.Seconds()
			}
			if r.all < 0 {
				all = math.Inf(1)
			}
			t.Logf("rep %d %-9s backlog %s x %d B: edge publish %s msg/s; heal -> first %s, -> all %s; catch-up %s msg/s, CPU %s/msg; cloud holds %d, lost %d, dup %d",
				rep+1, name, n, backlogSize, fmtRate(r.pubRate), fmtDur(r.first), fmtDur(r.all), fmtRate(r.rate), r.cpuPerMsg, r.stored, r.lost, r.dup)
			perRun[sys.i] = append(perRun[sys.i], fmtDur(r.first))
			add := (*sfRow).addA
			if sys.i == 1 {
				add = (*sfRow).addB
			}
			switch sys.i {
			case 2:
				fwdRow.addA(r.rate, r.lost, r.dup)
				continue
			case 1:
				fwdRow.addB(r.rate, 0, 0)
			}
			add(pubRow, r.pubRate, 0, 0)
			add(firstRow, first, 0, 0)
			add(rateRow, r.rate, 0, 0)
			add(allRow, all, r.lost, r.dup)
		}
	}
	note := fmt.Sprintf("Backlog heal -> first message, per run: tether %s; plain %s; forwarder alone %s (bound %s; \"none\" = nothing within it).",
		strings.Join(perRun[0], ", "), strings.Join(perRun[1], ", "), strings.Join(perRun[2], ", "), healFirstBound)
	return []*sfRow{pubRow, firstRow, rateRow, allRow, fwdRow}, []string{note}
}

// sfSystem is Tether (i 0), its plain twin (i 1) or Tether's forwarder
// between plain servers (i 2).
type sfSystem struct {
	i     int
	name  string
	start func(*testing.T) *sfTopo
}

// sfSystems lists the systems, in turns first: tether in even reps,
// the forwarder alone in odd ones.
func sfSystems(rep int) []sfSystem {
	systems := []sfSystem{{0, "tether", startTetherSF}, {1, "plain", startPlainSF}, {2, "forwarder", startForwarderSF}}
	if rep%2 == 1 {
		slices.Reverse(systems)
	}
	return systems
}

// benchOnline measures durable edge->cloud throughput with the link up:
// onlineCount messages published at the edge (edgeInflight awaiting the
// edge's PubAck), counted as they arrive in the cloud stream.
func benchOnline(t *testing.T, reps int) []*sfRow {
	row := &sfRow{name: fmt.Sprintf("online durable edge->cloud %s x %d B: edge JetStream publish (%d in flight) -> cloud stream consumer",
		fmtCount(onlineCount), backlogSize, edgeInflight),
		a: "tether", b: "plain", unit: "msg/s", format: fmtRate, goal: ">= 0.9x", ok: atLeast(0.9)}
	fwd := &sfRow{name: "same online run, Tether's forwarder alone (plain servers, no accounts, no service import)",
		a: "forwarder", b: "plain", unit: "msg/s", format: fmtRate, goal: "-"}
	for rep := range reps {
		for _, sys := range sfSystems(rep) {
			var r windowedResult
			var cpu time.Duration
			if !t.Run(fmt.Sprintf("rep%d-%s", rep+1, sys.name), func(t *testing.T) {
				top := sys.start(t)
				stop := profileCatchUp(t, "online."+sys.name)
				before := processCPU()
				r = measureDurable(t, top, onlineCount, backlogSize, onlineCount)
				cpu = (processCPU() - before) / onlineCount
				stop()
			}) {
				t.Fatalf("online run %d (%s) failed", rep+1, sys.name)
			}
			t.Logf("rep %d %-9s online %s x %d B: %s msg/s, CPU %s/msg; lost %d, dup %d",
				rep+1, sys.name, fmtCount(onlineCount), backlogSize, fmtRate(r.rate), cpu, r.lost, r.dup)
			switch sys.i {
			case 0:
				row.addA(r.rate, r.lost, r.dup)
			case 1:
				row.addB(r.rate, r.lost, r.dup)
				fwd.addB(r.rate, 0, 0)
			case 2:
				fwd.addA(r.rate, r.lost, r.dup)
			}
		}
	}
	return []*sfRow{row, fwd}
}

// atLeast judges a row by its ratio A/B, rounded to two places as shown.
func atLeast(ratio float64) func(a, b float64) bool {
	return func(a, b float64) bool { return math.Round(a/b*100)/100 >= ratio }
}

// fmtDur formats a duration measured by measureBacklog.
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtCount(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// startTetherEdgeOnly starts a Tether edge whose hub is unreachable: its
// publishes only go to the local buffer.
func startTetherEdgeOnly(t *testing.T, syncAlways bool) (url string, purge func()) {
	t.Helper()
	store := tethertest.NewStore(t)
	tethertest.AddEdge(t, store, edgeName)
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, edgeName, []string{"tls://" + tethertest.FreeAddr(t)}, nil))
	cfg.SyncAlways = syncAlways
	l := tethertest.RunLeaf(t, cfg, nil)
	return l.ClientURL(), purger(t, l.ClientURL(), "TELEMETRY")
}

// startPlainEdgeOnly starts a plain nats-server with JetStream (default
// sync interval, 2 min, or sync_always) and a file stream on telemetry.>.
func startPlainEdgeOnly(t *testing.T, syncAlways bool) (url string, purge func()) {
	t.Helper()
	s := runServer(t, &server.Options{
		ServerName: "plain-edge", Host: "127.0.0.1", Port: -1,
		JetStream: true, JetStreamDomain: plainDomain, StoreDir: t.TempDir(), SyncAlways: syncAlways,
	})
	nc := connect(t, s.ClientURL())
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	return s.ClientURL(), purger(t, s.ClientURL(), "TELEMETRY")
}

// purger returns a function that empties the stream, so that every run
// starts from the same state.
func purger(t *testing.T, url, stream string) func() {
	return func() {
		nc := connect(t, url)
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err == nil {
			err = s.Purge(ctx)
		}
		if err != nil {
			t.Fatalf("purge %s: %v", stream, err)
		}
	}
}

// benchDurability measures edge-local JetStream publishes, async with
// edgeInflight in flight and sync one by one, under each sync setting.
func benchDurability(t *testing.T, reps int) []*sfRow {
	type edge struct {
		name        string
		url         string
		purge       func()
		async, sync []float64
	}
	tI, tA, pI, pA := &edge{name: "tether sync_interval 1s"}, &edge{name: "tether sync_always"},
		&edge{name: "plain sync_interval default (2 min)"}, &edge{name: "plain sync_always"}
	tI.url, tI.purge = startTetherEdgeOnly(t, false)
	tA.url, tA.purge = startTetherEdgeOnly(t, true)
	pI.url, pI.purge = startPlainEdgeOnly(t, false)
	pA.url, pA.purge = startPlainEdgeOnly(t, true)
	edges := []*edge{tI, tA, pI, pA}
	run := func(e *edge, inflight, count int) float64 {
		e.purge()
		nc := connect(t, e.url)
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*edgeInflight))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := publishAcked(ctx, js, "telemetry.x", durSize, count, inflight, durRunBound)
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		return float64(r.acked) / r.elapsed.Seconds()
	}
	for rep := range reps {
		order := slices.Clone(edges)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, e := range order {
			a := run(e, edgeInflight, durAsyncCount)
			s := run(e, 0, durSyncCount)
			e.async, e.sync = append(e.async, a), append(e.sync, s)
			t.Logf("rep %d %-36s publish %d B: async (%d in flight) %s msg/s, sync %s msg/s",
				rep+1, e.name, durSize, edgeInflight, fmtRate(a), fmtRate(s))
		}
	}
	var rows []*sfRow
	pair := func(mode string, a, b *edge, av, bv func(*edge) []float64) {
		rows = append(rows, &sfRow{
			name: fmt.Sprintf("edge JetStream publish %d B, %s", durSize, mode),
			a:    a.name, b: b.name, unit: "msg/s", format: fmtRate, goal: "-", av: av(a), bv: bv(b),
		})
	}
	async := func(e *edge) []float64 { return e.async }
	sync := func(e *edge) []float64 { return e.sync }
	asyncMode, syncMode := fmt.Sprintf("async, %d in flight", edgeInflight), "sync, one by one"
	pair(asyncMode, tI, tA, async, async)
	pair(syncMode, tI, tA, sync, sync)
	pair(asyncMode, pI, pA, async, async)
	pair(syncMode, pI, pA, sync, sync)
	pair(asyncMode, tI, pI, async, async)
	pair(syncMode, tI, pI, sync, sync)
	pair(asyncMode, tA, pA, async, async)
	pair(syncMode, tA, pA, sync, sync)
	return rows
}

// renderSFTable returns the results as a Markdown table of medians.
func renderSFTable(rows []*sfRow, notes []string, reps int, took time.Duration, loadBefore, loadAfter string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d runs; ratio = A/B.\n\n", reps)
	b.WriteString("| workload | A | B | ratio | goal | lost A/B | dup A/B |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if len(r.av) == 0 || len(r.bv) == 0 {
			continue
		}
		am, bm := median(r.av), median(r.bv)
		unit := ""
		if r.unit != "" {
			unit = " " + r.unit
		}
		ratio := "-"
		if !r.noRatio && bm != 0 && !math.IsInf(am, 0) && !math.IsInf(bm, 0) {
			ratio = fmt.Sprintf("%.2fx", am/bm)
		}
		verdict := ""
		if r.ok != nil {
			if r.ok(am, bm) {
				verdict = " (ok)"
			} else {
				verdict = " (miss)"
			}
		}
		val := func(v float64) string {
			if math.IsInf(v, 0) {
				return "not all"
			}
			return r.format(v) + unit
		}
		fmt.Fprintf(&b, "| %s | %s: %s | %s: %s | %s | %s%s | %d/%d | %d/%d |\n",
			r.name, r.a, val(am), r.b, val(bm), ratio, r.goal, verdict, r.lost[0], r.lost[1], r.dup[0], r.dup[1])
	}
	b.WriteString("\n")
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	fmt.Fprintf(&b, "\n%s, GOMAXPROCS %d, load average %s before / %s after, bench wall time %s.\n",
		runtime.Version(), runtime.GOMAXPROCS(0), loadBefore, loadAfter, took.Round(time.Second))
	return b.String()
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileCatchUp writes a CPU profile of a measurement (the catch-up from
// the heal until the last message is in the cloud, or an online run) to
// $TETHER_BENCH_CPUPROFILE.<run> when that variable is set (the last run
// of a kind wins).
func profileCatchUp(t *testing.T, system string) (stop func()) {
	base := os.Getenv("TETHER_BENCH_CPUPROFILE")
	if base == "" {
		return func() {}
	}
	f, err := os.Create(base + "." + system)
	if err != nil {
		t.Fatalf("TETHER_BENCH_CPUPROFILE: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Fatalf("TETHER_BENCH_CPUPROFILE: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Errorf("TETHER_BENCH_CPUPROFILE: %v", err)
		}
	}
}

// benchLog returns a debug logger writing to a file named after the test
// and role in $TETHER_BENCH_LOGS when that variable names a directory, or
// nil (no logs).
func benchLog(t *testing.T, role string) *slog.Logger {
	dir := os.Getenv("TETHER_BENCH_LOGS")
	if dir == "" {
		return nil
	}
	name := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"."+role+".log")
	f, err := os.Create(name)
	if err != nil {
		t.Fatalf("TETHER_BENCH_LOGS: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	t.Logf("%s log: %s", role, name)
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
