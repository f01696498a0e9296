package test

import (
	"bufio"
	"bytes"
	"fmt"
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
//   - warm point: the series' first soakMemWarm of its span, or
//     soakMemWarmMin, whichever is later. Both the hubs' TELEMETRY stream
//     and an edge's buffer remember message ids for 2 minutes (the dedup
//     window), so their memory climbs for the first 2 minutes of traffic
//     by design; restarts, catch-ups and caches fill in the same time.
//   - baseline: the highest sample in the window of soakMemWarmSpan of the
//     span after the warm point (the highest, so that a burst just then,
//     a catch-up say, cannot be mistaken for the level it falls back to).
//   - end: the median of the last soakMemEnd samples (robust to one GC
//     cycle or one catch-up at the very end).
//   - growth: end/baseline - 1, which must stay below soakMemMaxGrowth.
//
// An edge process is judged only if it was sampled for at least
// soakMemMinLife. It is asserted only when the chaos lasts at least
// soakMemMinChaos; shorter runs (the CI tier's 20 s) log the figures.
const (
	soakMemMaxGrowth = 0.20 // T-A4
	soakMemWarm      = 0.20 // of a series' span
	soakMemWarmMin   = 150 * time.Second
	soakMemWarmSpan  = 0.10 // of a series' span
	soakMemEnd       = 5    // samples
	soakMemMinChaos  = 4 * time.Minute
	soakMemMinLife   = 3 * time.Minute
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

// soakGrowth is a series' memory at its warm point and at its end.
type soakGrowth struct {
	series    *soakMemSeries
	base, end uint64
	baseAt    time.Time // the baseline sample's time
	life      time.Duration
}

func (g soakGrowth) ratio() float64 { return float64(g.end)/float64(g.base) - 1 }

func (g soakGrowth) String() string {
	return fmt.Sprintf("%.1f→%.1f MB (%+.1f%%)", mb(g.base), mb(g.end), 100*g.ratio())
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// growth judges ser (see soakMemMaxGrowth); false when it has too few
// samples for a baseline before its end.
func (ser *soakMemSeries) growth() (soakGrowth, bool) {
	n := len(ser.samples)
	if n <= soakMemEnd {
		return soakGrowth{}, false
	}
	first, last := ser.samples[0].at, ser.samples[n-1].at
	span := last.Sub(first)
	warm := first.Add(max(time.Duration(soakMemWarm*float64(span)), soakMemWarmMin))
	warmEnd := warm.Add(time.Duration(soakMemWarmSpan * float64(span)))
	tail := ser.samples[n-soakMemEnd:]
	g := soakGrowth{series: ser, life: span}
	for _, s := range ser.samples[:n-soakMemEnd] {
		if s.at.Before(warm) {
			continue
		}
		if g.base == 0 || (!s.at.After(warmEnd) && s.bytes > g.base) {
			g.base, g.baseAt = s.bytes, s.at
		}
	}
	if g.base == 0 {
		// Too short for the warm-up: the baseline is the sample just
		// before the end.
		g.base, g.baseAt = ser.samples[n-soakMemEnd-1].bytes, ser.samples[n-soakMemEnd-1].at
	}
	ends := make([]uint64, 0, soakMemEnd)
	for _, s := range tail {
		ends = append(ends, s.bytes)
	}
	slices.Sort(ends)
	g.end = ends[len(ends)/2]
	return g, true
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
	fmt.Fprintf(&b, "memory (growth from the warm point to the end, limit %.0f%%, %s; sampled every %s):",
		100*soakMemMaxGrowth, mode, m.every)
	fail := func(g soakGrowth, what string) {
		if assert && g.ratio() >= soakMemMaxGrowth {
			t.Errorf("seed %d: memory: %s grew %.1f%%, from %.1f MB at %s (the warm point) to %.1f MB at the end (median of the last %d samples); limit %.0f%%",
				seed, what, 100*g.ratio(), mb(g.base), g.baseAt.Sub(m.start).Round(time.Second), mb(g.end), soakMemEnd, 100*soakMemMaxGrowth)
		}
	}
	if g, ok := m.hubs.growth(); ok {
		fmt.Fprintf(&b, "\n  hubs' live heap (the test process) %s", g)
		fail(g, "the hubs' live heap (the test process)")
	} else {
		fmt.Fprintf(&b, "\n  hubs' live heap: %d samples, too few to judge", len(m.hubs.samples))
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
			if g.life >= soakMemMinLife {
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
			fmt.Fprintf(&b, "\n  %s RSS, no process up %s (not judged); longest: %s pid %d, up %s: %s", e.name,
				soakMemMinLife, longest.series.name, longest.series.pid, longest.life.Round(time.Second), longest)
		default:
			fmt.Fprintf(&b, "\n  %s RSS: no process sampled more than %d times", e.name, soakMemEnd)
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
