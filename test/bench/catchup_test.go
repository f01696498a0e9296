//go:build bench

package bench

import (
	"os"
	"strings"
	"testing"
)

// TestBenchCatchUp is a narrow entry point for iterating on the forwarder:
// only the backlog catch-up of TestBenchStoreForward, for the systems named
// in TETHER_BENCH_SYSTEMS (tether, plain, forwarder; default
// "tether,plain"), TETHER_BENCH_REPS runs each (default 3), with
// TETHER_BENCH_BACKLOG and TETHER_BENCH_OUTAGE as there and
// TETHER_BENCH_SIZE bytes per message (default 256). Figures for the
// record come from TestBenchStoreForward.
//
//	TETHER_BENCH_SYSTEMS=tether TETHER_BENCH_OUTAGE=2s go test -tags bench -run '^TestBenchCatchUp$' -count=1 -v ./test/bench
func TestBenchCatchUp(t *testing.T) {
	backlog := envInt(t, "TETHER_BENCH_BACKLOG", backlogCount)
	size := envInt(t, "TETHER_BENCH_SIZE", backlogSize)
	outage := envDuration(t, "TETHER_BENCH_OUTAGE", backlogOutage)
	eachSystem(t, "tether,plain", func(t *testing.T, rep int, name string, top *sfTopo) {
		r := measureBacklog(t, top, backlog, size, outage)
		t.Logf("rep %d %-9s: heal -> first %s, -> all %s; catch-up %s msg/s, CPU %s/msg; cloud holds %d, lost %d, dup %d",
			rep+1, name, fmtDur(r.first), fmtDur(r.all), fmtRate(r.rate), r.cpuPerMsg, r.stored, r.lost, r.dup)
	})
}

// TestBenchOnline is the online rows of TestBenchStoreForward alone
// (TETHER_BENCH_REPS runs, default 3); with TETHER_BENCH_SYSTEMS, each
// system named there instead (as in TestBenchCatchUp).
//
//	go test -tags bench -run '^TestBenchOnline$' -count=1 -v ./test/bench
func TestBenchOnline(t *testing.T) {
	if os.Getenv("TETHER_BENCH_SYSTEMS") != "" {
		eachSystem(t, "", func(t *testing.T, rep int, name string, top *sfTopo) {
			before := processCPU()
			r := measureDurable(t, top, onlineCount, backlogSize, onlineCount)
			t.Logf("rep %d %-9s online %s x %d B: %s msg/s, CPU %s/msg; lost %d, dup %d",
				rep+1, name, fmtCount(onlineCount), backlogSize, fmtRate(r.rate), (processCPU()-before)/onlineCount, r.lost, r.dup)
		})
		return
	}
	for _, row := range benchOnline(t, envInt(t, "TETHER_BENCH_REPS", defaultReps)) {
		a, b := median(row.av), median(row.bv)
		t.Logf("%s: %s %s msg/s, %s %s msg/s: %.2fx (goal %s); lost %d/%d, dup %d/%d",
			row.name, row.a, fmtRate(a), row.b, fmtRate(b), a/b, row.goal, row.lost[0], row.lost[1], row.dup[0], row.dup[1])
	}
}

// benchSystems are the systems TETHER_BENCH_SYSTEMS can name.
var benchSystems = map[string]func(*testing.T) *sfTopo{
	"tether": startTetherSF, "plain": startPlainSF, "forwarder": startForwarderSF,
}

// eachSystem runs measure, TETHER_BENCH_REPS times (default 3), on a fresh
// topology of each system named in TETHER_BENCH_SYSTEMS (or def), each in
// its own subtest.
func eachSystem(t *testing.T, def string, measure func(t *testing.T, rep int, name string, top *sfTopo)) {
	reps := envInt(t, "TETHER_BENCH_REPS", defaultReps)
	systems := def
	if v := os.Getenv("TETHER_BENCH_SYSTEMS"); v != "" {
		systems = v
	}
	for rep := range reps {
		for _, name := range strings.Split(systems, ",") {
			start, ok := benchSystems[name]
			if !ok {
				t.Fatalf("TETHER_BENCH_SYSTEMS: unknown system %q (want tether, plain or forwarder)", name)
			}
			t.Run(name, func(t *testing.T) { measure(t, rep, name, start(t)) })
		}
	}
}
