//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// The mosquitto comparison: an edge broker bridged to a cloud broker
// (Debian's mosquitto, driven by its own mosquitto_pub and mosquitto_sub).
const (
	mqCount = 100_000
	mqSize  = 128
	// mqWindow bounds the messages published and not yet received in the
	// cloud: the bridge's queue on the edge broker holds 1000 QoS 1
	// messages by default (max_queued_messages) beyond the 20 in flight
	// and drops the rest, so a larger window loses messages.
	mqWindow = 900
	// mqCheckEvery is how often (in messages) the window is checked.
	mqCheckEvery = 100
	// tetherWindowBytes is Tether's window in the main table (8 MiB).
	tetherWindowBytes = pubWindowBytes
	mqBridge          = "bench-bridge"
)

// mqBins are the mosquitto programs.
type mqBins struct{ broker, pub, sub, stdbuf string }

// findMosquitto looks for the programs on PATH and in the usual places
// (mosquitto is in /usr/sbin on Debian).
func findMosquitto() (mqBins, error) {
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s not found", name)
	}
	var b mqBins
	var err error
	if b.broker, err = find("mosquitto"); err != nil {
		return b, err
	}
	if b.pub, err = find("mosquitto_pub"); err != nil {
		return b, err
	}
	if b.sub, err = find("mosquitto_sub"); err != nil {
		return b, err
	}
	b.stdbuf, err = find("stdbuf") // coreutils
	return b, err
}

// proc is a child process whose stderr (and stdout unless piped) is kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *tethertest.LogBuffer
	exited chan struct{}
	err    error // valid once exited is closed
}

// startProc starts cmd; readers are waited for before cmd.Wait (they
// must drain the process's pipes). The process is stopped at cleanup:
// SIGTERM, then SIGKILL after 10s.
func startProc(t *testing.T, name string, cmd *exec.Cmd, readers ...func()) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, log: &tethertest.LogBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.log
	if cmd.Stdout == nil && len(readers) == 0 {
		cmd.Stdout = p.log
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		for _, r := range readers {
			r()
		}
	}()
	go func() {
		<-read
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s of SIGTERM; killing it", name)
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// wait waits up to d for the process to exit.
func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w; output:\n%s", p.name, p.err, p.log.String())
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s still running after %s", p.name, d)
	}
}

// mqBroker is a mosquitto broker listening on a free loopback port.
type mqBroker struct {
	*proc
	port int
}

// startMosquitto starts a broker with the given extra configuration on a
// free loopback port (retrying if another process took it meanwhile) and
// waits until it accepts connections.
func startMosquitto(t *testing.T, bins mqBins, name, extra string) *mqBroker {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		_, portStr, _ := net.SplitHostPort(tethertest.FreeAddr(t))
		port, _ := strconv.Atoi(portStr)
		conf := filepath.Join(dir, fmt.Sprintf("%s-%d.conf", name, attempt))
		// Defaults everywhere but the listener, no persistence file and
		// the log on stderr.
		text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n%s", port, extra)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		b := &mqBroker{proc: startProc(t, "mosquitto "+name, exec.Command(bins.broker, "-c", conf)), port: port}
		err := waitDial(b, 10*time.Second)
		if err == nil {
			return b
		}
		if attempt == 3 {
			t.Fatalf("%v; log:\n%s", err, b.log.String())
		}
		t.Logf("retrying: %v", err)
	}
}

// waitDial polls the broker's port every 10ms until it accepts a
// connection, the broker exits or d passes.
func waitDial(b *mqBroker, d time.Duration) error {
	addr := fmt.Sprintf("127.0.0.1:%d", b.port)
	deadline := time.Now().Add(d)
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("%s exited at start: %v", b.name, b.err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not accepting connections after %s: %v", b.name, addr, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits up to d for a log line containing s.
func (p *proc) waitLog(s string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !p.log.Contains(s) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q in the log after %s; log:\n%s", p.name, s, d, p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// mqPair is a cloud broker and an edge broker bridged to it through a
// proxy: "topic telemetry/# out 1", cleansession false, default queue and
// in-flight limits (1000 and 20), restart_timeout 1 s instead of the
// default backoff of 5 to 30 s, so that the bridge comes back about as
// fast as the NATS links (250ms reconnect interval).
type mqPair struct {
	cloud, edge *mqBroker
	proxy       *netproxy.Proxy
}

func startMQPair(t *testing.T, bins mqBins) *mqPair {
	t.Helper()
	cloud := startMosquitto(t, bins, "cloud", "")
	p, err := netproxy.New(fmt.Sprintf("127.0.0.1:%d", cloud.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	bridge := fmt.Sprintf(`connection %s
address %s
remote_clientid %s
topic telemetry/# out 1
cleansession false
restart_timeout 1
`, mqBridge, p.Addr(), mqBridge)
	edge := startMosquitto(t, bins, "edge", bridge)
	return &mqPair{cloud: cloud, edge: edge, proxy: p}
}

// mqPub is a mosquitto_pub -l process: every line written to it is
// published at QoS 1. Beware: at the end of its input mosquitto_pub
// 2.0.11 disconnects without sending what it still queues (it read 100k
// lines from a file, sent 34k and exited 0); hence the windows below.
type mqPub struct {
	*proc
	pipe io.WriteCloser
	w    *bufio.Writer
	line []byte
	// With ack tracking (-d), acks counts the broker's PUBACKs and
	// ackProg fires (coalesced) as they advance.
	acks    atomic.Int64
	ackProg chan struct{}
}

func startMQPub(t *testing.T, bins mqBins, port int, topic string, trackAcks bool) *mqPub {
	t.Helper()
	args := []string{bins.pub, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-t", topic, "-l"}
	if trackAcks {
		// -d prints a line per packet on stdout; stdbuf makes stdio
		// flush each line into the pipe.
		args = append([]string{bins.stdbuf, "-oL"}, append(args, "-d")...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	pipe, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &mqPub{pipe: pipe, w: bufio.NewWriterSize(pipe, 64<<10), ackProg: make(chan struct{}, 1)}
	var readers []func()
	if trackAcks {
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if bytes.Contains(sc.Bytes(), []byte("received PUBACK")) {
					p.acks.Add(1)
					select {
					case p.ackProg <- struct{}{}:
					default:
					}
				}
			}
			_, _ = io.Copy(io.Discard, out)
		})
	}
	p.proc = startProc(t, "mosquitto_pub", cmd, readers...)
	t.Cleanup(func() { pipe.Close() })
	return p
}

// publish writes one message, a line of size bytes whose first 8 are i.
func (p *mqPub) publish(i, size int) error {
	if len(p.line) != size+1 {
		p.line = []byte(strings.Repeat("x", size) + "\n")
	}
	copy(p.line, fmt.Sprintf("%08d", i))
	_, err := p.w.Write(p.line)
	return err
}

func (p *mqPub) probe(phase, k int) error {
	if _, err := fmt.Fprintf(p.w, "probe-%d-%d\n", phase, k); err != nil {
		return err
	}
	return p.w.Flush()
}

// finish closes the input and waits until mosquitto_pub has had every
// message acknowledged by the broker and exited.
func (p *mqPub) finish(d time.Duration) error {
	if err := p.w.Flush(); err != nil {
		return err
	}
	if err := p.pipe.Close(); err != nil {
		return err
	}
	return p.wait(d)
}

// startMQSub runs mosquitto_sub -q <qos> on telemetry/# and feeds every
// line it prints (one payload per line) to a.
func startMQSub(t *testing.T, bins mqBins, port, qos int, a *arrivals) *proc {
	t.Helper()
	cmd := exec.Command(bins.sub, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", strconv.Itoa(qos), "-t", "telemetry/#")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	return startProc(t, "mosquitto_sub", cmd, func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			a.add(sc.Bytes())
		}
		_, _ = io.Copy(io.Discard, out)
	})
}

// probeArrival calls send(k) for k = 0, 1, ... every 100ms until a probe
// of the phase arrives or d passes.
func probeArrival(a *arrivals, phase int, d time.Duration, send func(k int) error) error {
	deadline := time.Now().Add(d)
	for k := 0; a.probes[phase].Load() == 0; k++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("no probe arrived within %s", d)
		}
		if err := send(k); err != nil {
			return err
		}
		t := time.NewTimer(100 * time.Millisecond)
		for a.probes[phase].Load() == 0 {
			select {
			case <-a.prog:
				continue
			case <-t.C:
			}
			break
		}
		t.Stop()
	}
	return nil
}

// windowedResult is an edge->cloud run with end-to-end flow control.
type windowedResult struct {
	rate      float64 // distinct messages received per second, first publish to last arrival
	lost, dup int
}

// measureWindowed publishes count messages through publish, keeping at
// most window of them published and not yet received (checked every
// mqCheckEvery), and waits for the rest; a run that makes no progress for
// stallTimeout ends and counts what is missing as lost.
func measureWindowed(t *testing.T, name string, count, window int, publish func(i int) error, flush func() error, a *arrivals) windowedResult {
	t.Helper()
	start := time.Now()
	deadline := start.Add(runTimeout)
	for i := range count {
		if err := publish(i); err != nil {
			t.Fatalf("%s: publish %d: %v", name, i, err)
		}
		if (i+1)%mqCheckEvery != 0 {
			continue
		}
		if err := flush(); err != nil {
			t.Fatalf("%s: flush: %v", name, err)
		}
		for int64(i+1)-a.total.Load() > int64(window) && time.Now().Before(deadline) {
			select {
			case <-a.prog:
			case <-time.After(stallTimeout):
				t.Logf("%s: no progress for %s at %d received of %d sent", name, stallTimeout, a.total.Load(), i+1)
				deadline = time.Now()
			}
		}
	}
	if err := flush(); err != nil {
		t.Fatalf("%s: flush: %v", name, err)
	}
	last, lastAt := a.total.Load(), time.Now()
	for a.distinct.Load() < int64(count) {
		select {
		case <-a.prog:
		case <-time.After(50 * time.Millisecond):
		}
		if n := a.total.Load(); n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > stallTimeout || time.Now().After(start.Add(runTimeout)) {
			break
		}
	}
	got := a.distinct.Load()
	end := time.Unix(0, a.lastNano.Load())
	return windowedResult{rate: float64(got) / end.Sub(start).Seconds(), lost: count - int(got), dup: int(a.dups.Load())}
}

// measureMQWindowed measures QoS 1 edge->cloud throughput over the bridge.
func measureMQWindowed(t *testing.T, bins mqBins, count, size, window int) windowedResult {
	t.Helper()
	mp := startMQPair(t, bins)
	a := newArrivals(count)
	startMQSub(t, bins, mp.cloud.port, 1, a)
	pub := startMQPub(t, bins, mp.edge.port, "telemetry/x", false)
	if err := probeArrival(a, 0, 20*time.Second, func(k int) error { return pub.probe(0, k) }); err != nil {
		t.Fatalf("mosquitto bridge: %v; edge log:\n%s", err, mp.edge.log.String())
	}
	r := measureWindowed(t, "mosquitto", count, window, func(i int) error { return pub.publish(i, size) }, pub.w.Flush, a)
	if err := pub.finish(time.Minute); err != nil {
		t.Error(err)
	}
	if mp.edge.log.Contains("dropped") {
		t.Logf("mosquitto edge broker dropped messages:\n%s", mp.edge.log.String())
	}
	return r
}

// measureTetherWindowed measures the same on Tether: JetStream publishes
// acknowledged by the edge's buffer, forwarded to the cloud, received by a
// core subscriber of the CLOUD account on the hub.
func measureTetherWindowed(t *testing.T, top *sfTopo, count, size, window int) windowedResult {
	t.Helper()
	return measureEdgeToCloud(t, top, count, size, window, func(cnc *nats.Conn, a *arrivals) {
		sub, err := cnc.Subscribe("edges."+edgeName+".telemetry.>", func(m *nats.Msg) { a.add(m.Data) })
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			t.Fatal(err)
		}
		if err := cnc.Flush(); err != nil {
			t.Fatal(err)
		}
	})
}

// measureDurable measures durable edge->cloud throughput on any topology:
// JetStream publishes acknowledged by the edge's stream, counted when an
// ordered consumer on the cloud stream receives them (a sourcing hub
// stores without publishing on the subject, so a core subscriber would see
// nothing there).
func measureDurable(t *testing.T, top *sfTopo, count, size, window int) windowedResult {
	t.Helper()
	return measureEdgeToCloud(t, top, count, size, window, func(cnc *nats.Conn, a *arrivals) {
		js, err := top.cloudJS(cnc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var cons jetstream.Consumer
		tethertest.WaitFor(t, 10*time.Second, func() error {
			cons, err = js.OrderedConsumer(ctx, top.stream, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{strings.TrimSuffix(top.subject, ".x") + ".>"},
				DeliverPolicy:  jetstream.DeliverNewPolicy,
			})
			return err
		})
		cc, err := cons.Consume(func(m jetstream.Msg) { a.add(m.Data()) }, jetstream.PullMaxMessages(4096))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cc.Stop)
	})
}

// measureEdgeToCloud publishes count JetStream messages at the edge with
// at most window of them not yet received in the cloud, received through
// what receive sets up on a cloud connection.
func measureEdgeToCloud(t *testing.T, top *sfTopo, count, size, window int, receive func(*nats.Conn, *arrivals)) windowedResult {
	t.Helper()
	var asyncErrs atomic.Int64
	enc := connect(t, top.edgeURL)
	defer enc.Close()
	js, err := jetstream.New(enc, jetstream.WithPublishAsyncMaxPending(window+2*mqCheckEvery),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { asyncErrs.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	cnc := top.cloud(t)
	defer cnc.Close()
	a := newArrivals(count)
	receive(cnc, a)
	if err := probeArrival(a, 0, 20*time.Second, func(k int) error {
		_, err := js.PublishAsync("telemetry.probe", fmt.Appendf(nil, "probe-0-%d", k))
		return err
	}); err != nil {
		t.Fatalf("%s: %v", top.name, err)
	}
	tmpl := randomPayload(size)
	r := measureWindowed(t, top.name, count, window,
		func(i int) error { _, err := js.PublishAsync("telemetry.x", indexed(tmpl, i)); return err },
		func() error { return nil }, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Errorf("%s: edge PubAcks outstanding after the run", top.name)
	}
	if n := asyncErrs.Load(); n > 0 {
		t.Errorf("%s: %d edge publishes failed", top.name, n)
	}
	return r
}

// measureMQBacklog cuts the bridge, publishes count QoS 1 messages at the
// edge broker (each acknowledged to mosquitto_pub), heals the bridge and
// counts what reaches the cloud subscriber. The run ends when a probe
// published at the edge after the heal arrives: the bridge's queue is
// first in, first out, so everything queued before it has been delivered.
func measureMQBacklog(t *testing.T, bins mqBins, count, size int) backlogResult {
	t.Helper()
	mp := startMQPair(t, bins)
	a := newArrivals(count)
	startMQSub(t, bins, mp.cloud.port, 1, a)
	probe := startMQPub(t, bins, mp.edge.port, "telemetry/x", false)
	if err := probeArrival(a, 0, 20*time.Second, func(k int) error { return probe.probe(0, k) }); err != nil {
		t.Fatalf("mosquitto bridge: %v; edge log:\n%s", err, mp.edge.log.String())
	}
	if err := probe.finish(time.Minute); err != nil {
		t.Fatal(err)
	}
	mp.proxy.SetMode(netproxy.Cut)
	// The edge broker logs the lost bridge connection.
	if err := mp.edge.waitLog("Client local."+mqBridge+" ", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Every message is acknowledged by the edge broker (PUBACK) before
	// the heal; the publisher is paced by those acks.
	pub := startMQPub(t, bins, mp.edge.port, "telemetry/x", true)
	start := time.Now()
	waitAcks := func(n int64, d time.Duration) {
		t.Helper()
		for pub.acks.Load() < n {
			select {
			case <-pub.ackProg:
			case <-time.After(d):
				t.Fatalf("mosquitto edge broker acknowledged %d of %d publishes", pub.acks.Load(), n)
			}
		}
	}
	for i := range count {
		if err := pub.publish(i, size); err != nil {
			t.Fatalf("mosquitto_pub: %v", err)
		}
		if (i+1)%mqCheckEvery == 0 {
			if err := pub.w.Flush(); err != nil {
				t.Fatalf("mosquitto_pub: %v", err)
			}
			waitAcks(int64(i+1-mqWindow), 10*time.Second)
		}
	}
	if err := pub.w.Flush(); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}
	waitAcks(int64(count), 10*time.Second)
	res := backlogResult{pubRate: float64(count) / time.Since(start).Seconds(), first: -1, all: -1}
	if err := pub.finish(time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := a.total.Load(); n != 0 {
		t.Logf("mosquitto: %d messages reached the cloud before the heal", n)
	}

	mp.proxy.SetMode(netproxy.Pass)
	healed := time.Now()
	pub2 := startMQPub(t, bins, mp.edge.port, "telemetry/x", false)
	if err := probeArrival(a, 1, healFirstBound, func(k int) error { return pub2.probe(1, k) }); err != nil {
		t.Logf("mosquitto: after the heal: %v", err)
	}
	if err := pub2.finish(time.Minute); err != nil {
		t.Error(err)
	}
	got := int(a.distinct.Load())
	if f := a.firstNano.Load(); f != 0 {
		first, last := time.Unix(0, f), time.Unix(0, a.lastNano.Load())
		res.first = first.Sub(healed)
		if got == count {
			res.all = last.Sub(healed)
		}
		if last.After(first) {
			res.rate = float64(a.total.Load()) / last.Sub(first).Seconds()
		}
	}
	res.stored, res.lost, res.dup = int(a.total.Load()), count-got, int(a.dups.Load())
	if mp.edge.log.Contains("dropped") {
		t.Logf("mosquitto edge broker log mentions drops: %q", firstLine(mp.edge.log.String(), "dropped"))
	}
	return res
}

func firstLine(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// benchMosquitto compares Tether with a mosquitto bridge: QoS 1
// throughput edge->cloud, and an offline backlog.
func benchMosquitto(t *testing.T, reps int) ([]*sfRow, []string) {
	bins, err := findMosquitto()
	if err != nil {
		t.Skipf("mosquitto comparison skipped: %v (Debian: apt-get install -y mosquitto mosquitto-clients)", err)
	}
	atLeast5 := atLeast(5)
	thrSame := &sfRow{name: fmt.Sprintf("QoS 1 / acked publish %d B edge->cloud, both with a %d-message end-to-end window", mqSize, mqWindow),
		a: "tether", b: "mosquitto", unit: "msg/s", format: fmtRate, goal: ">= 5x", ok: atLeast5}
	tetherWin := tetherWindowBytes / mqSize
	thrOwn := &sfRow{name: fmt.Sprintf("same, tether with the main table's 8 MiB window (%d messages)", tetherWin),
		a: "tether", b: "mosquitto", unit: "msg/s", format: fmtRate, goal: ">= 5x", ok: atLeast5}
	// What NATS itself does under the same window: the plain twin (edge
	// JetStream, hub stream sourcing it), read by a consumer of the hub
	// stream (a sourcing stream does not publish what it stores).
	thrPlain := &sfRow{name: "same window, plain NATS (edge JetStream + hub sourcing, read by a hub stream consumer)",
		a: "plain", b: "mosquitto", unit: "msg/s", format: fmtRate, goal: "-"}
	lostRow := &sfRow{name: fmt.Sprintf("offline backlog %s x %d B acked at the edge, then heal: lost", fmtCount(mqCount), mqSize),
		a: "tether", b: "mosquitto", format: fmtPercent, goal: "tether 0", noRatio: true,
		ok: func(a, _ float64) bool { return a == 0 }}
	firstRow := &sfRow{name: "offline backlog: heal -> first message in the cloud (lower is better)", a: "tether", b: "mosquitto", format: fmtSeconds, goal: "-"}
	var delivered [2][]string
	for rep := range reps {
		runs := []func(){
			func() {
				var own, same windowedResult
				if !t.Run(fmt.Sprintf("rep%d-tether-throughput", rep+1), func(t *testing.T) {
					top := startTetherSF(t)
					same = measureTetherWindowed(t, top, mqCount, mqSize, mqWindow)
					own = measureTetherWindowed(t, top, mqCount, mqSize, tetherWin)
				}) {
					t.FailNow()
				}
				t.Logf("rep %d tether    QoS1-like %d B: %s msg/s with a %d window, %s msg/s with %d; lost %d/%d dup %d/%d",
					rep+1, mqSize, fmtRate(same.rate), mqWindow, fmtRate(own.rate), tetherWin, same.lost, own.lost, same.dup, own.dup)
				thrSame.addA(same.rate, same.lost, same.dup)
				thrOwn.addA(own.rate, own.lost, own.dup)
			},
			func() {
				var r windowedResult
				if !t.Run(fmt.Sprintf("rep%d-mosquitto-throughput", rep+1), func(t *testing.T) {
					r = measureMQWindowed(t, bins, mqCount, mqSize, mqWindow)
				}) {
					t.FailNow()
				}
				t.Logf("rep %d mosquitto QoS1 %d B: %s msg/s with a %d window; lost %d dup %d", rep+1, mqSize, fmtRate(r.rate), mqWindow, r.lost, r.dup)
				thrSame.addB(r.rate, r.lost, r.dup)
				thrOwn.addB(r.rate, r.lost, r.dup)
				thrPlain.addB(r.rate, r.lost, r.dup)
			},
			func() {
				var r windowedResult
				if !t.Run(fmt.Sprintf("rep%d-plain-throughput", rep+1), func(t *testing.T) {
					r = measureDurable(t, startPlainSF(t), mqCount, mqSize, mqWindow)
				}) {
					t.FailNow()
				}
				t.Logf("rep %d plain     QoS1-like %d B: %s msg/s with a %d window; lost %d dup %d", rep+1, mqSize, fmtRate(r.rate), mqWindow, r.lost, r.dup)
				thrPlain.addA(r.rate, r.lost, r.dup)
			},
			func() {
				var r backlogResult
				if !t.Run(fmt.Sprintf("rep%d-tether-backlog", rep+1), func(t *testing.T) {
					r = measureBacklog(t, startTetherSF(t), mqCount, mqSize, 0)
				}) {
					t.FailNow()
				}
				t.Logf("rep %d tether    backlog %d x %d B: cloud holds %d, lost %d, dup %d; heal -> first %s, -> all %s",
					rep+1, mqCount, mqSize, r.stored, r.lost, r.dup, fmtDur(r.first), fmtDur(r.all))
				lostRow.addA(100*float64(r.lost)/mqCount, r.lost, r.dup)
				firstRow.addA(durOr(r.first), 0, 0)
				delivered[0] = append(delivered[0], strconv.Itoa(r.stored-r.dup))
			},
			func() {
				var r backlogResult
				if !t.Run(fmt.Sprintf("rep%d-mosquitto-backlog", rep+1), func(t *testing.T) {
					r = measureMQBacklog(t, bins, mqCount, mqSize)
				}) {
					t.FailNow()
				}
				t.Logf("rep %d mosquitto backlog %d x %d B: cloud got %d, lost %d, dup %d; heal -> first %s",
					rep+1, mqCount, mqSize, r.stored, r.lost, r.dup, fmtDur(r.first))
				lostRow.addB(100*float64(r.lost)/mqCount, r.lost, r.dup)
				firstRow.addB(durOr(r.first), 0, 0)
				delivered[1] = append(delivered[1], strconv.Itoa(r.stored-r.dup))
			},
		}
		if rep%2 == 1 {
			runs[0], runs[2], runs[3], runs[4] = runs[2], runs[0], runs[4], runs[3]
		}
		for _, run := range runs {
			run()
		}
	}
	note := fmt.Sprintf("Offline backlog of %d messages, distinct messages delivered per run: tether %s; mosquitto %s.",
		mqCount, strings.Join(delivered[0], ", "), strings.Join(delivered[1], ", "))
	return []*sfRow{thrSame, thrOwn, thrPlain, lostRow, firstRow}, []string{note}
}

// durOr returns d in seconds, or healFirstBound's for none.
func durOr(d time.Duration) float64 {
	if d < 0 {
		return healFirstBound.Seconds()
	}
	return d.Seconds()
}
