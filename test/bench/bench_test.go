//go:build bench

// Tether vs plain NATS, in the same run. Run (about 2.5 minutes on 2 cores):
//
//	go test -tags bench -run '^TestBench$' -count=1 -v -timeout 20m ./test/bench
//
// It prints a table of medians (workload | tether | plain | ratio | goal);
// TETHER_BENCH_MD=<file> also writes the table as Markdown, and
// TETHER_BENCH_REPS=<n> changes the number of repetitions (default 3).
// See doc.go for the topologies and docs/BENCHMARKS.md for the figures.
package bench

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Workload sizes. The core path is measured with more messages than the
// durable paths, which are several times slower, to keep each run at a
// second or more.
const (
	smallSize         = 128
	largeSize         = 1024
	coreSmallCount    = 500_000
	coreLargeCount    = 200_000
	durableSmallCount = 100_000
	durableLargeCount = 40_000
	reqSize           = 128
	reqSeq            = 20_000
	reqTotal          = 20_000
	reqInflight       = 32
	defaultReps       = 3
)

// row is one line of the result table: samples of Tether and of its
// plain-NATS counterpart.
type row struct {
	name   string
	unit   string
	higher bool   // higher is better
	goal   string // e.g. ">= 0.95x"; "-" for none
	format func(float64) string
	tether []float64
	plain  []float64
	lost   [2]int // tether, plain: messages lost or requests failed
	mode   string // negotiated leaf compression, tether/plain
}

func (r *row) addTether(v float64, lost int) { r.tether = append(r.tether, v); r.lost[0] += lost }
func (r *row) addPlain(v float64, lost int)  { r.plain = append(r.plain, v); r.lost[1] += lost }

func TestBench(t *testing.T) {
	reps := defaultReps
	if v := os.Getenv("TETHER_BENCH_REPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TETHER_BENCH_REPS=%q: want a positive integer", v)
		}
		reps = n
	}
	began, loadBefore := time.Now(), loadAvg()
	var rows []*row
	var bin binaryResult
	t.Run("binary", func(t *testing.T) { bin = measureBinary(t) })

	for _, mode := range []string{"off", "s2_fast"} {
		us := func(v float64) string { return fmt.Sprintf("%.0f us", v) }
		thr := func(name, unit string) *row {
			return &row{name: name, unit: unit, higher: true, goal: ">= 0.95x", format: fmtRate}
		}
		core128 := thr("telemetry 128 B edge->cloud, plain = core leaf link", "msg/s")
		core1k := thr("telemetry 1 KiB edge->cloud, plain = core leaf link", "msg/s")
		dur128 := thr("telemetry 128 B edge->cloud, plain = edge stream + hub sourcing", "msg/s")
		dur1k := thr("telemetry 1 KiB edge->cloud, plain = edge stream + hub sourcing", "msg/s")
		p50 := &row{name: "request 128 B cloud->edge p50, plain = core leaf link", goal: "<= 1.1x", format: us}
		p99 := &row{name: "request 128 B cloud->edge p99, plain = core leaf link", goal: "-", format: us}
		rps := thr(fmt.Sprintf("request 128 B cloud->edge, %d in flight, plain = core leaf link", reqInflight), "req/s")
		p50TLS := &row{name: "request 128 B cloud->edge p50, plain = same + TLS client port", goal: "<= 1.1x", format: us}
		rpsTLS := thr(fmt.Sprintf("request 128 B cloud->edge, %d in flight, plain = same + TLS client port", reqInflight), "req/s")
		modeRows := []*row{core128, core1k, dur128, dur1k, p50, p99, rps, p50TLS, rpsTLS}

		t.Run("compression="+mode, func(t *testing.T) {
			tether, plain, plainJS, plainTLS := startTether(t, mode), startPlain(t, mode), startPlainDurable(t, mode), startPlainTLS(t, mode)
			for _, top := range []*topology{tether, plain, plainJS, plainTLS} {
				t.Logf("%s link compression: %s", top.name, top.compression())
			}
			for _, r := range modeRows {
				other := plain
				switch r {
				case dur128, dur1k:
					other = plainJS
				case p50TLS, rpsTLS:
					other = plainTLS
				}
				r.mode = tether.compression() + "/" + other.compression()
			}
			pubs := []struct {
				size                    int
				coreCount, durableCount int
				core, durable           *row
			}{
				{smallSize, coreSmallCount, durableSmallCount, core128, dur128},
				{largeSize, coreLargeCount, durableLargeCount, core1k, dur1k},
			}
			for rep := range reps {
				// Alternate who goes first so that drift and warm-up do
				// not favour one system.
				first := rep%2 == 0
				for _, p := range pubs {
					runs := []func(){
						func() {
							r := measurePublish(t, tether, p.size, p.durableCount)
							t.Logf("rep %d %-8s pub %4d B: %s msg/s lost %d", rep+1, tether.name, p.size, fmtRate(r.rate), r.lost)
							p.core.addTether(r.rate, r.lost)
							p.durable.addTether(r.rate, r.lost)
						},
						func() {
							r := measurePublish(t, plain, p.size, p.coreCount)
							t.Logf("rep %d %-8s pub %4d B: %s msg/s lost %d", rep+1, plain.name, p.size, fmtRate(r.rate), r.lost)
							p.core.addPlain(r.rate, r.lost)
						},
						func() {
							r := measurePublish(t, plainJS, p.size, p.durableCount)
							t.Logf("rep %d %-8s pub %4d B: %s msg/s lost %d", rep+1, plainJS.name, p.size, fmtRate(r.rate), r.lost)
							p.durable.addPlain(r.rate, r.lost)
						},
					}
					if !first {
						slices.Reverse(runs)
					}
					for _, run := range runs {
						run()
					}
				}
				pairs := []*echo{startEcho(t, tether, reqSize), startEcho(t, plain, reqSize), startEcho(t, plainTLS, reqSize)}
				lat := measureLatency(t, pairs, reqSeq)
				for j, e := range pairs {
					t.Logf("rep %d %-9s req 128 B: p50 %s p99 %s, errors %d",
						rep+1, e.top.name, lat[j].p50, lat[j].p99, lat[j].errors)
				}
				us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
				p50.addTether(us(lat[0].p50), lat[0].errors)
				p99.addTether(us(lat[0].p99), lat[0].errors)
				p50TLS.addTether(us(lat[0].p50), lat[0].errors)
				p50.addPlain(us(lat[1].p50), lat[1].errors)
				p99.addPlain(us(lat[1].p99), lat[1].errors)
				p50TLS.addPlain(us(lat[2].p50), lat[2].errors)
				if !first {
					slices.Reverse(pairs)
				}
				for _, e := range pairs {
					rate, failed := measureInflight(e, reqTotal, reqInflight)
					t.Logf("rep %d %-9s req 128 B: %s req/s with %d in flight, errors %d",
						rep+1, e.top.name, fmtRate(rate), reqInflight, failed)
					switch e.top {
					case tether:
						rps.addTether(rate, failed)
						rpsTLS.addTether(rate, failed)
					case plain:
						rps.addPlain(rate, failed)
					case plainTLS:
						rpsTLS.addPlain(rate, failed)
					}
					e.close()
				}
			}
		})
		rows = append(rows, modeRows...)
	}

	table := renderTable(rows, bin, reps, time.Since(began), loadBefore, loadAvg())
	fmt.Println()
	fmt.Println(table)
	if path := os.Getenv("TETHER_BENCH_MD"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// loadAvg returns the 1-minute load average, or "?" where unknown.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// renderTable returns the results as a Markdown table of medians.
func renderTable(rows []*row, bin binaryResult, reps int, took time.Duration, loadBefore, loadAfter string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d runs; ratio = tether/plain; leaf compression as negotiated (tether/plain).\n\n", reps)
	b.WriteString("| workload | compression | tether | plain | ratio | goal | lost (t/p) |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if len(r.tether) == 0 || len(r.plain) == 0 {
			continue
		}
		tm, pm := median(r.tether), median(r.plain)
		unit := ""
		if r.unit != "" {
			unit = " " + r.unit
		}
		ratio := math.Round(tm/pm*100) / 100 // judged as printed
		verdict := ""
		switch {
		case r.goal == "-":
		case r.higher && ratio < 0.95, !r.higher && ratio > 1.1:
			verdict = " (miss)"
		default:
			verdict = " (ok)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s%s | %s%s | %.2fx | %s%s | %d/%d |\n",
			r.name, r.mode, r.format(tm), unit, r.format(pm), unit, ratio, r.goal, verdict, r.lost[0], r.lost[1])
	}
	okIf := func(ok bool) string {
		if ok {
			return "(ok)"
		}
		return "(miss)"
	}
	if bin.size > 0 {
		mb := float64(bin.size) / 1e6
		fmt.Fprintf(&b, "| static binary size | - | %.1f MB | - | - | <= 30 MB %s | - |\n", mb, okIf(mb <= 30))
	}
	if bin.leafRSS > 0 {
		mb := float64(bin.leafRSS) / 1e6
		fmt.Fprintf(&b, "| idle leaf RSS, linked, after %s | s2_fast | %.1f MB | - | - | <= 20 MB %s | - |\n",
			bin.window, mb, okIf(mb <= 20))
		fmt.Fprintf(&b, "| idle hub RSS, same moment (reference) | - | %.1f MB | - | - | - | - |\n", float64(bin.hubRSS)/1e6)
	}
	fmt.Fprintf(&b, "\n%s, GOMAXPROCS %d, load average %s before / %s after, bench wall time %s.\n",
		runtime.Version(), runtime.GOMAXPROCS(0), loadBefore, loadAfter, took.Round(time.Second))
	return b.String()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
