package test

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The soak's memory check (reliability.md T-A4: "RSS growth < 20%"; T-D1's
// "slope < 5% per 10 min" is for a steady load without faults and is not
// asserted here). Memory is sampled on the chaos loop every soakMemEvery:
// the hubs' live heap and the RSS of every edge process. Each series (the
// hubs; one per edge process, keyed by pid, since a SIGKILLed edge is
// started again as a new process) is judged from its warm point to its
// end:
//
//   - warm point: soakMemWarm into the series' span, or soakMemWarmMin,
//     whichever is later. The hubs' TELEMETRY stream and an edge's buffer
//     remember message ids for 2 minutes (the dedup window, about 112 B
//     per message), so memory climbs for the first 2 minutes of traffic
//     by design. In a 4-minute run an edge process's growth measured from
//     60 s in was up to +25%, from 150 s in at most +12.3%.
//   - baseline: the median of the samples in the soakMemWindow of the span
//     that follows the warm point; end: the median of the samples in the
//     last soakMemWindow. The same statistic over windows of the same
//     length on both sides: the hubs' live heap swings by ±20% from one
//     sample to the next (hub restarts, catch-ups), so a single sample or
//     a maximum at one end would measure that swing, not a trend.
//   - growth: end/baseline - 1, which must stay below soakMemMaxGrowth.
//
// A series is judged when the warm-up and both windows fit in it, which
// takes soakMemWarmMin/(1-2*soakMemWindow), about 3.6 minutes: the hubs
// from 4 minutes of chaos on, an edge process if no SIGKILL cut it
// short. The check is asserted when the
// chaos lasts at least soakMemMinChaos (the full tier's 10 minutes, or a
// TETHER_SOAK_DURATION of 4m or more); shorter runs (the CI tier's 20 s)
// only log the figures.
const (
	soakMemMaxGrowth = 0.20 // T-A4
	soakMemWarm      = 0.20 // of a series' span
	soakMemWarmMin   = 150 * time.Second
	soakMemWindow    = 0.15 // of a series' span
	soakMemMinChaos  = 4 * time.Minute
)

// soakMemEvery is the sampling period for a chaos of duration d: about 60
// samples, every 2 to 10 s.
func soakMemEvery(d time.Duration) time.Duration {
	return min(max(d/60, 2*time.Second), 10*time.Second)
}

// soakMemSample is one reading of a process's memory, in bytes.
type soakMemSample struct {
	at    time.Time
	bytes uint64
}

// soakMemSeries is the memory of the hubs or of one edge process over the
// chaos.
type soakMemSeries struct {
	name    string // "hubs" or the edge process's name, "soak-2 (run 3)"
	edge    string // "" for the hubs
	pid     int    // 0 for the hubs
	samples []soakMemSample
}

// soakMem samples memory during the chaos. The chaos loop owns it.
type soakMem struct {
	start time.Time // of the chaos
	every time.Duration
	next  time.Time
	hubs  *soakMemSeries
	edges []*soakMemSeries // in the order their processes were first seen
	byPID map[int]*soakMemSeries
	err   error // the first edge RSS that could not be read, if any
}

func newSoakMem(d time.Duration) *soakMem {
	now := time.Now()
	return &soakMem{start: now, every: soakMemEvery(d), next: now,
		hubs: &soakMemSeries{name: "hubs"}, byPID: map[int]*soakMemSeries{}}
}

// hubHeapBytes is the hubs' memory: the heap that the last GC cycle found
// live ("/gc/heap/live:bytes"). The hubs run in the test process, so it
// also holds the proxies, the producers' clients and the edges' logs;
// none of them grows by more than a few MB in a run. The metric does not
// depend on where the GC cycle stands (unlike heap in use, which carries
// the garbage since the last cycle), so no runtime.GC is forced.
func hubHeapBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// procRSS reads VmRSS, the resident set size, of process pid.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS of pid %d: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// sample takes a sample of the hubs and of every live edge process, if
// one is due.
func (m *soakMem) sample(edges []*soakEdge) {
	now := time.Now()
	if now.Before(m.next) {
		return
	}
	m.next = now.Add(m.every)
	m.hubs.samples = append(m.hubs.samples, soakMemSample{now, hubHeapBytes()})
	for _, e := range edges {
		if e.leaf == nil {
			continue // killed, not started again yet
		}
		p := e.leaf.proc
		rss, err := procRSS(p.cmd.Process.Pid)
		if err != nil {
			// The process ended (checkRunning fails the soak if on its
			// own) or there is no /proc: the summary says so.
			if m.err == nil {
				m.err = err
			}
			continue
		}
		ser := m.byPID[p.cmd.Process.Pid]
		if ser == nil || ser.name != p.name { // a new process, even on a reused pid
			ser = &soakMemSeries{name: p.name, edge: e.name, pid: p.cmd.Process.Pid}
			m.byPID[ser.pid] = ser
			m.edges = append(m.edges, ser)
		}
		ser.samples = append(ser.samples, soakMemSample{now, rss})
	}
}

// soakGrowth is a series' memory after its warm-up and at its end.
type soakGrowth struct {
	series    *soakMemSeries
	base, end uint64
	baseAt    time.Time // the start of the baseline's window
	life      time.Duration
	judged    bool // the warm-up and both windows fit in the series
}

func (g soakGrowth) ratio() float64 { return float64(g.end)/float64(g.base) - 1 }

func (g soakGrowth) String() string {
	return fmt.Sprintf("%.1f→%.1f MB (%+.1f%%)", mb(g.base), mb(g.end), 100*g.ratio())
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// growth measures ser from its warm point to its end (see soakMemWarm).
// In a series too short to be judged, the warm point is soakMemWarm into
// it, without the floor. False when it has no sample.
func (ser *soakMemSeries) growth() (soakGrowth, bool) {
	n := len(ser.samples)
	if n == 0 {
		return soakGrowth{}, false
	}
	first, last := ser.samples[0].at, ser.samples[n-1].at
	span := last.Sub(first)
	window := time.Duration(soakMemWindow * float64(span))
	warm := first.Add(max(time.Duration(soakMemWarm*float64(span)), soakMemWarmMin))
	judged := !warm.Add(window).After(last.Add(-window))
	if !judged {
		warm = first.Add(time.Duration(soakMemWarm * float64(span)))
	}
	base := soakMedian(ser.samples, warm, warm.Add(window))
	end := soakMedian(ser.samples, last.Add(-window), last)
	return soakGrowth{series: ser, base: base, end: end, baseAt: warm, life: span, judged: judged}, base > 0
}

// soakMedian is the median of the samples taken from from to to.
func soakMedian(samples []soakMemSample, from, to time.Time) uint64 {
	var in []uint64
	for _, s := range samples {
		if !s.at.Before(from) && !s.at.After(to) {
			in = append(in, s.bytes)
		}
	}
	if len(in) == 0 {
		return 0
	}
	slices.Sort(in)
	return (in[(len(in)-1)/2] + in[len(in)/2]) / 2
}

// check judges every series. With assert, a growth at or above the
// threshold fails the test; otherwise (a chaos too short to judge a
// trend) the figures are only logged. It returns the summary line: the
// hubs, and per edge its worst judged process (or, if none lived long
// enough, its longest-lived one, marked as not judged).
func (m *soakMem) check(t *testing.T, edges []*soakEdge, seed uint64, assert bool) string {
	t.Helper()
	mode := "asserted"
	if !assert {
		mode = fmt.Sprintf("logged only: under %s of chaos", soakMemMinChaos)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "memory (median after the warm-up → median at the end, limit +%.0f%%, %s; sampled every %s):",
		100*soakMemMaxGrowth, mode, m.every)
	fail := func(g soakGrowth, what string) {
		if assert && g.ratio() >= soakMemMaxGrowth {
			t.Errorf("seed %d: memory: %s grew %.1f%%, from %.1f MB (median from %s into the chaos, after the warm-up) to %.1f MB (median at the end); limit +%.0f%%",
				seed, what, 100*g.ratio(), mb(g.base), g.baseAt.Sub(m.start).Round(time.Second), mb(g.end), 100*soakMemMaxGrowth)
		}
	}
	if g, ok := m.hubs.growth(); ok {
		fmt.Fprintf(&b, "\n  hubs' live heap (the test process) %s", g)
		if g.judged {
			fail(g, "the hubs' live heap (the test process)")
		} else {
			b.WriteString(" (too short to judge)")
		}
	} else {
		b.WriteString("\n  hubs' live heap: no sample")
	}
	for _, e := range edges {
		var worst, longest soakGrowth
		for _, ser := range m.edges {
			if ser.edge != e.name {
				continue
			}
			g, ok := ser.growth()
			if !ok {
				continue
			}
			if g.judged {
				fail(g, fmt.Sprintf("edge %s, process %s (pid %d), RSS", e.name, ser.name, ser.pid))
				if worst.series == nil || g.ratio() > worst.ratio() {
					worst = g
				}
			}
			if longest.series == nil || g.life > longest.life {
				longest = g
			}
		}
		switch {
		case worst.series != nil:
			fmt.Fprintf(&b, "\n  %s RSS, worst process: %s pid %d, up %s: %s", e.name,
				worst.series.name, worst.series.pid, worst.life.Round(time.Second), worst)
		case longest.series != nil:
			fmt.Fprintf(&b, "\n  %s RSS, no process up long enough to judge; longest: %s pid %d, up %s: %s", e.name,
				longest.series.name, longest.series.pid, longest.life.Round(time.Second), longest)
		default:
			fmt.Fprintf(&b, "\n  %s RSS: no process sampled", e.name)
		}
	}
	if m.err != nil {
		fmt.Fprintf(&b, "\n  (an edge's RSS could not be read: %v)", m.err)
	}
	return b.String()
}

// save writes every sample into dir/memory.tsv: seconds into the chaos,
// the series, bytes.
func (m *soakMem) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("seconds\tseries\tpid\tbytes\n")
	for _, ser := range append([]*soakMemSeries{m.hubs}, m.edges...) {
		for _, s := range ser.samples {
			fmt.Fprintf(&b, "%.1f\t%s\t%d\t%d\n", s.at.Sub(m.start).Seconds(), ser.name, ser.pid, s.bytes)
		}
	}
	return os.WriteFile(filepath.Join(dir, "memory.tsv"), b.Bytes(), 0o644)
}

// TestSoakMemGrowth checks the memory check's measure on made-up series,
// one sample every 4 s.
func TestSoakMemGrowth(t *testing.T) {
	series := func(d time.Duration, mb func(at time.Duration) float64) *soakMemSeries {
		ser := &soakMemSeries{name: "made-up"}
		t0 := time.Now()
		for at := time.Duration(0); at <= d; at += 4 * time.Second {
			ser.samples = append(ser.samples, soakMemSample{t0.Add(at), uint64(mb(at) * (1 << 20))})
		}
		return ser
	}
	tests := []struct {
		name      string
		ser       *soakMemSeries
		judged    bool
		base, end float64 // MB
	}{
		{"flat", series(5*time.Minute, func(time.Duration) float64 { return 50 }), true, 50, 50},
		{"dedup window filling, then flat", series(5*time.Minute, func(at time.Duration) float64 {
			return 30 + 20*min(at.Minutes()/2, 1)
		}), true, 50, 50},
		{"swings of ±20%", series(5*time.Minute, func(at time.Duration) float64 {
			return []float64{120, 100, 140}[at/(4*time.Second)%3]
		}), true, 120, 120},
		{"leak of 10 MB a minute", series(10*time.Minute, func(at time.Duration) float64 {
			return 50 + 10*at.Minutes()
		}), true, 82.5, 142.5},
		{"too short", series(3*time.Minute, func(time.Duration) float64 { return 50 }), false, 50, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := tc.ser.growth()
			if !ok {
				t.Fatal("no growth measured")
			}
			if g.judged != tc.judged || math.Abs(mb(g.base)-tc.base) > 1 || math.Abs(mb(g.end)-tc.end) > 1 {
				t.Errorf("got %s, judged %v; want %.1f→%.1f MB, judged %v", g, g.judged, tc.base, tc.end, tc.judged)
			}
		})
	}
}
