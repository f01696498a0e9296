package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/fleet"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// soakConfig sizes a soak run. Without TETHER_SOAK it is the CI tier: 2
// edges, about 20 s of chaos with short faults, every kind of fault at
// least once. TETHER_SOAK=1 selects the full tier: 5 edges for 10 min with
// faults as long as the field's (cuts up to 40 s, pauses up to 30 s).
// TETHER_SOAK_DURATION and TETHER_SOAK_EDGES override either tier's size;
// TETHER_SOAK_SEED replays a run's choices (which fault, on which edge,
// for how long), as far as the timing lets the same edges be free.
// TETHER_SOAK_LOGS names a directory that receives every edge run's log
// (a failed soak prints them anyway) and memory.tsv, the memory samples.
type soakConfig struct {
	full      bool
	duration  time.Duration // of the chaos
	edges     int
	producers int // per edge
	rate      int // messages per second per edge
	seed      uint64
	logs      string // directory for the edges' logs, or ""
	timing    soakTiming
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	t.Helper()
	c := soakConfig{duration: 20 * time.Second, edges: 2, producers: 2, rate: 200,
		seed: uint64(time.Now().UnixNano()), logs: os.Getenv("TETHER_SOAK_LOGS"), timing: soakCI}
	if os.Getenv("TETHER_SOAK") != "" {
		c.full, c.duration, c.edges, c.timing = true, 10*time.Minute, 5, soakFull
	}
	if v := os.Getenv("TETHER_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("TETHER_SOAK_DURATION=%q: want a positive Go duration such as 5m", v)
		}
		c.duration = d
	}
	if v := os.Getenv("TETHER_SOAK_EDGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TETHER_SOAK_EDGES=%q: want a number of edges >= 1", v)
		}
		c.edges = n
	}
	if v := os.Getenv("TETHER_SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TETHER_SOAK_SEED=%q: want the unsigned number a soak logged", v)
		}
		c.seed = n
	}
	return c
}

// TestSoak is a randomized chaos run over a 3-hub cluster and real 'tether
// leaf' processes, each edge's link to each hub through its own proxy,
// while producers publish at a steady rate on every edge. Faults overlap
// (at most one per edge, at most one hub down): link cuts, flapping links,
// replies dropped, edges SIGKILLed and restarted on their data, edges
// SIGSTOPped and resumed, hubs shut down and started again. After each
// heal the edge must catch up (or the hub be healthy) within a bound. At
// the end everything is healed, the producers stop, every backlog drains,
// and the cloud must hold every acknowledged message exactly once, in
// order per producer, with every edge ok in the fleet view. Memory is
// sampled throughout the chaos; from 4 minutes of chaos on, neither the
// hubs' live heap nor any long-lived edge process's RSS may grow by 20%
// after its warm-up (soak_mem_test.go). The seed is logged; see
// soakConfig for the sizes ('task soak' runs the full tier).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	tetherBinary(t) // build before anything is timed
	cfg := soakConfigFromEnv(t)
	tier := "CI"
	if cfg.full {
		tier = "full"
	}
	t.Logf("soak seed %d (replay with TETHER_SOAK_SEED=%d), %s tier: %d edges x %d producers at %d msg/s per edge, %s of chaos",
		cfg.seed, cfg.seed, tier, cfg.edges, cfg.producers, cfg.rate, cfg.duration)
	// Beyond the chaos: the cluster's start, the drain, the checks (under
	// a minute in the CI tier, minutes with 5 edges and long faults).
	margin := 90 * time.Second
	if cfg.full {
		margin = 5 * time.Minute
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < cfg.duration+margin {
		t.Fatalf("%s of chaos does not fit in the test timeout (%s left): run 'task soak' or raise -timeout",
			cfg.duration, time.Until(dl).Round(time.Second))
	}
	// The edges notice a dead link within 3 s, retry fast, and report to
	// the cloud every second (the fleet view is checked at the end).
	t.Setenv("TETHER_PING_INTERVAL", "1s")
	t.Setenv("TETHER_RECONNECT_INTERVAL", "250ms")
	t.Setenv("TETHER_STATUS_INTERVAL", "1s")

	// Registered first, so it runs last: once the hubs, connections and
	// edges are gone, the goroutines they started must be gone too
	// (reliability.md: within +20 of the baseline).
	baseline := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > baseline+20 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines after teardown: %d, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(100 * time.Millisecond) // polling, not synchronization
		}
		t.Logf("goroutines after teardown: %d (baseline %d)", runtime.NumGoroutine(), baseline)
	})
	s := &soak{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 0)), start: time.Now(), busy: map[string]bool{}}
	store := tethertest.NewStore(t)
	s.hubs = tethertest.RunCluster(t, store, 3)
	for i := range cfg.edges {
		s.edges = append(s.edges, newSoakEdge(t, store, s.hubs, fmt.Sprintf("soak-%d", i+1)))
	}
	if cfg.logs != "" {
		t.Cleanup(func() {
			for _, e := range s.edges {
				if err := e.saveLogs(cfg.logs); err != nil {
					t.Errorf("keep the edges' logs: %v", err)
				}
			}
			if s.mem != nil {
				if err := s.mem.save(cfg.logs); err != nil {
					t.Errorf("keep the memory samples: %v", err)
				}
			}
		})
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	every := time.Duration(cfg.producers) * time.Second / time.Duration(cfg.rate)
	for _, e := range s.edges {
		for j := range cfg.producers {
			e.producers = append(e.producers, startSoakProducer(ctx, e, fmt.Sprintf("p%d", j+1), every))
		}
	}
	t.Logf("%7s cluster and %d edges up, producers started", s.elapsed(), len(s.edges))

	chaosStart := time.Now()
	s.chaos(t)
	chaosTook := time.Since(chaosStart)
	stop()
	published, acked, refused := 0, 0, 0
	for _, e := range s.edges {
		for _, p := range e.producers {
			if err := p.wait(soakPubAckWait + 30*time.Second); err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			sent, _ := p.result()
			published += sent
			acked += int(p.acked.Load())
			refused += int(p.refused.Load())
		}
	}
	drainStart := time.Now()
	for _, e := range s.edges {
		e.leaf.waitStatus(t, 2*time.Minute, e.name+" backlog delivered", func(st leaf.Status) error {
			if !st.Link.Connected || st.Buffer.BacklogMsgs != 0 {
				return fmt.Errorf("link up %v, backlog %d messages (last error %q)", st.Link.Connected, st.Buffer.BacklogMsgs, st.Buffer.LastError)
			}
			return nil
		})
	}
	t.Logf("%7s chaos over after %s; producers stopped; every backlog delivered %s later",
		s.elapsed(), chaosTook.Round(time.Millisecond), time.Since(drainStart).Round(time.Millisecond))

	cloud := tethertest.ConnectCloud(t, store, s.hubs[0])
	delivered := s.verifyCloud(t, cloud)
	s.checkFleet(t, store, cloud)
	memory := s.mem.check(t, s.edges, cfg.seed, cfg.duration >= soakMemMinChaos)
	t.Logf("soak summary (seed %d, %s tier, %d edges x %d producers, %d msg/s per edge, %s of chaos, test %s):\n"+
		"  published %d, acknowledged by the edges %d, refused by the client %d, delivered to the cloud %d "+
		"(%d unacknowledged ones among them); lost 0, duplicated 0, out of order 0\n"+
		"  edge runs (SIGKILL and watchdog restarts included): %s\n"+
		"  %s\n"+
		"  %s",
		cfg.seed, tier, cfg.edges, cfg.producers, cfg.rate, chaosTook.Round(time.Second), time.Since(s.start).Round(time.Second),
		published, acked, refused, delivered, delivered-acked, s.runs(), s.summary(), memory)
}

// verifyCloud drains the CLOUD telemetry stream per edge and checks every
// producer: nothing it had acknowledged is missing, nothing is duplicated
// or out of order, nothing is there that it never published. All of an
// edge's messages carry one origin (its store is never wiped). It returns
// how many messages the cloud holds.
func (s *soak) verifyCloud(t *testing.T, cloud *nats.Conn) int {
	t.Helper()
	total := 0
	for _, e := range s.edges {
		n := crashCloudCount(t, cloud, e.name)
		msgs := crashReadCloud(t, cloud, e.name, n, 2*time.Minute)
		total += n
		byProducer := map[string][]crashCloudMsg{}
		for _, m := range msgs {
			byProducer[m.producer] = append(byProducer[m.producer], m)
			if m.origin != msgs[0].origin {
				t.Errorf("seed %d: %s: cloud holds messages of two origins, %s and %s", s.cfg.seed, e.name, msgs[0].origin, m.origin)
				break
			}
		}
		for _, p := range e.producers {
			sent, ok := p.result()
			if err := crashVerify(byProducer[p.name], sent, func(i int) bool { return ok[i] }); err != nil {
				t.Errorf("seed %d: %s producer %s: %v", s.cfg.seed, e.name, p.name, err)
			}
			delete(byProducer, p.name)
		}
		for name, msgs := range byProducer {
			t.Errorf("seed %d: %s: %d messages of unknown producer %q", s.cfg.seed, e.name, len(msgs), name)
		}
	}
	return total
}

// checkFleet waits (bounded) until the fleet view shows every edge ok.
func (s *soak) checkFleet(t *testing.T, store *accounts.Store, cloud *nats.Conn) {
	t.Helper()
	sys, err := fleet.ConnectSystem(store, s.hubs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	pubs := map[string]string{}
	var names []string
	for _, e := range s.edges {
		ed, err := store.Edge(e.name)
		if err != nil {
			t.Fatal(err)
		}
		pubs[e.name] = ed.Account.Pub
		names = append(names, e.name)
	}
	tethertest.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		views, err := fleet.Fleet(ctx, sys, cloud, pubs, names)
		if err != nil {
			return err
		}
		var bad []string
		for _, v := range views {
			if v.State != fleet.StateOK {
				bad = append(bad, fmt.Sprintf("%s %s (%s)", v.Edge, v.State, v.StateReason))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("seed %d: fleet view not ok: %s", s.cfg.seed, strings.Join(bad, "; "))
		}
		return nil
	})
}

// runs says how many runs each edge had.
func (s *soak) runs() string {
	var parts []string
	for _, e := range s.edges {
		part := fmt.Sprintf("%s %d", e.name, e.runs)
		if e.watchdogStops > 0 {
			part += fmt.Sprintf(" (%d after its link watchdog stopped it)", e.watchdogStops)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}
