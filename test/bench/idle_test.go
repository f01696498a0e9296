//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestBenchIdle measures what an idle linked edge costs: the RSS and CPU of
// a `tether leaf` process of the static binary, beside a plain nats-server
// leaf (the same nats-server release, built the same way, with JetStream
// and an empty file stream on telemetry.>, as the edge's buffer) linked to
// the same `tether hub` with another edge's credentials, and the hub's CPU
// meanwhile. Run (about 2.5 minutes with the default window):
//
//	go test -tags bench -run '^TestBenchIdle$' -count=1 -v -timeout 20m ./test/bench
//
// TETHER_IDLE_WINDOW (default 60s) is how long CPU is counted (utime +
// stime from /proc/<pid>/stat) and RSS sampled, once both leaves are
// linked and TETHER_IDLE_SETTLE (default 10s) has passed; TETHER_IDLE_BIN
// runs a prebuilt tether binary instead of building one (to compare
// builds), TETHER_IDLE_LEAF_ENV adds space-separated NAME=VALUE pairs to
// the tether leaf's environment, TETHER_IDLE_LEAF_ARGS arguments to its
// command line (e.g. --debug-pprof 127.0.0.1:6060 to profile it), and TETHER_IDLE_MD=<file> writes the
// table as Markdown.
func TestBenchIdle(t *testing.T) {
	window := envDuration(t, "TETHER_IDLE_WINDOW", 60*time.Second)
	settle := envDuration(t, "TETHER_IDLE_SETTLE", 10*time.Second)
	dir := t.TempDir()
	bin := os.Getenv("TETHER_IDLE_BIN")
	if bin == "" {
		bin, _ = buildBinary(t, dir)
	}
	natsBin := buildNATSServer(t, dir)

	store := filepath.Join(dir, "store")
	runCmd(t, bin, "init", "--dir", store)
	bundles := map[string]string{}
	for _, e := range []string{"e1", "e2"} {
		bundles[e] = filepath.Join(dir, e+".bundle")
		runCmd(t, bin, "edge", "add", e, "--dir", store, "--out", bundles[e])
	}
	hub := startProcess(t, "hub", bin, "--log-json", "hub", "--store", store, "--data", filepath.Join(dir, "hub-data"),
		"--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0", "--websocket-listen", "off", "--monitor-listen", "off")
	ready := hub.waitLog(t, "a log line with the leaf URL", 30*time.Second, func(l map[string]any) bool {
		u, _ := l["leaf"].(string)
		return u != ""
	})
	leafURL := ready["leaf"].(string)
	for _, path := range bundles {
		b, err := sitefile.LoadBundle(path)
		if err != nil {
			t.Fatal(err)
		}
		b.HubURLs = []string{leafURL}
		if err := sitefile.WriteBundle(path, b); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(bin, "--log-json", "leaf", "--bundle", bundles["e1"], "--data", filepath.Join(dir, "leaf-data"),
		"--listen", "127.0.0.1:0")
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("TETHER_IDLE_LEAF_ARGS"))...)
	cmd.Env = append(os.Environ(), strings.Fields(os.Getenv("TETHER_IDLE_LEAF_ENV"))...)
	tl := startCmd(t, "tether leaf", cmd)
	plain, plainURL := startPlainLeaf(t, natsBin, dir, bundles["e2"])
	tl.waitLog(t, `"link up"`, 30*time.Second, hasMsg("link up"))
	plain.waitRaw(t, "Leafnode connection created", 30*time.Second)
	addPlainBuffer(t, plainURL)
	t.Logf("both leaves linked; idle for %s, then measuring for %s", settle, window)
	for end := time.Now().Add(settle); time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond) // a workload: the processes sit idle
	}

	procs := []*process{tl, plain, hub}
	cpu0 := make([]time.Duration, len(procs))
	maxRSS := make([]int64, len(procs))
	for i, p := range procs {
		cpu0[i] = readCPU(t, p.cmd.Process.Pid)
	}
	start := time.Now()
	var series [2][]string // the leaves' RSS every 30 s, for the log
	for n := 1; time.Since(start) < window; n++ {
		time.Sleep(time.Second)
		for i, p := range procs {
			r := readRSS(t, p.cmd.Process.Pid)
			maxRSS[i] = max(maxRSS[i], r)
			if i < len(series) && n%30 == 0 {
				series[i] = append(series[i], fmt.Sprintf("%.1f", mb(r)))
			}
		}
	}
	t.Logf("RSS every 30 s (MB): tether leaf %s; plain leaf %s", strings.Join(series[0], " "), strings.Join(series[1], " "))
	took := time.Since(start)
	var rss, anon, file []int64
	var cpu []float64
	for i, p := range procs {
		m := readMem(t, p.cmd.Process.Pid)
		rss, anon, file = append(rss, m["VmRSS"]), append(anon, m["RssAnon"]), append(file, m["RssFile"])
		cpu = append(cpu, 100*(readCPU(t, p.cmd.Process.Pid)-cpu0[i]).Seconds()/took.Seconds())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "idle for %s after link-up, measured for %s\n\n", settle, took.Round(time.Second))
	fmt.Fprintf(&b, "| idle linked edge | tether leaf | plain nats-server leaf | ratio | goal |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| RSS at the end | %.1f MB | %.1f MB | %.2fx | <= 20 MB |\n", mb(rss[0]), mb(rss[1]), ratio(rss[0], rss[1]))
	fmt.Fprintf(&b, "| RSS, highest sample | %.1f MB | %.1f MB | %.2fx | - |\n", mb(maxRSS[0]), mb(maxRSS[1]), ratio(maxRSS[0], maxRSS[1]))
	fmt.Fprintf(&b, "| of which anonymous (heap, stacks, runtime) | %.1f MB | %.1f MB | %.2fx | - |\n", mb(anon[0]), mb(anon[1]), ratio(anon[0], anon[1]))
	fmt.Fprintf(&b, "| of which file-backed (the binary's pages) | %.1f MB | %.1f MB | %.2fx | - |\n", mb(file[0]), mb(file[1]), ratio(file[0], file[1]))
	fmt.Fprintf(&b, "| CPU, share of a core | %.2f%% | %.2f%% | %s | <= 0.5%% |\n", cpu[0], cpu[1], cpuRatio(cpu[0], cpu[1]))
	fmt.Fprintf(&b, "| hub (reference): RSS %.1f MB, CPU %.2f%% of a core, serving both | | | | |\n", mb(rss[2]), cpu[2])
	t.Log("\n" + b.String())
	if path := os.Getenv("TETHER_IDLE_MD"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readMem returns the memory fields of /proc/<pid>/status (VmRSS, RssAnon,
// RssFile, ...) in bytes.
func readMem(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read memory of pid %d: %v", pid, err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[strings.TrimSuffix(f[0], ":")] = kb << 10
			}
		}
	}
	return m
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func cpuRatio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", a/b)
}

// buildNATSServer builds the nats-server release Tether embeds (the module's
// own version), static and stripped like the tether binary.
func buildNATSServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/nats-io/nats-server/v2")
	build.Dir = moduleRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	return bin
}

// startPlainLeaf runs a plain nats-server leaf with JetStream, linked to the
// hub with the credentials and CA of the edge bundle, and returns it with
// its client URL. Its link settings are the tether leaf's defaults (ping
// 2s, 2 pings out, reconnect 2s, s2_fast, sync interval 1s), so the
// difference is what Tether adds. Its client port was free a moment before.
func startPlainLeaf(t *testing.T, bin, dir, bundle string) (*process, string) {
	t.Helper()
	b, err := sitefile.LoadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	creds, ca := filepath.Join(dir, "plain.creds"), filepath.Join(dir, "plain-ca.pem")
	if err := os.WriteFile(creds, []byte(b.Creds), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte(b.CA), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := tethertest.FreeAddr(t)
	conf := filepath.Join(dir, "plain.conf")
	text := fmt.Sprintf(`server_name: plain-leaf
listen: %q
ping_interval: "2s"
ping_max: 2
jetstream {
  store_dir: %q
  domain: %q
  sync_interval: "1s"
}
leafnodes {
  reconnect_interval: "2s"
  remotes [{
    urls: [%q]
    credentials: %q
    tls { ca_file: %q }
    compression: s2_fast
  }]
}
`, addr, filepath.Join(dir, "plain-data"), b.Domain, b.HubURLs[0], creds, ca)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return startCmd(t, "plain leaf", exec.Command(bin, "-c", conf)), "nats://" + addr
}

// addPlainBuffer gives the plain leaf what a store-and-forward edge needs
// at least, as the tether leaf has: a file stream on telemetry.> (empty,
// like the idle tether leaf's buffer).
func addPlainBuffer(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to the plain leaf: %v", err)
	}
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
		t.Fatalf("plain leaf's buffer stream: %v", err)
	}
}

// waitRaw waits for a line of the process's output that contains s.
func (p *process) waitRaw(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		raw := p.raw.String()
		p.mu.Unlock()
		if strings.Contains(raw, s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %s; output:\n%s", p.name, s, d, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
