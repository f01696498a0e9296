//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// idleWindow is how long the linked edge sits idle before its RSS is read.
const idleWindow = 3 * time.Second

// binaryResult is the static binary's size and the idle RSS of its processes.
type binaryResult struct {
	size           int64
	leafRSS        int64 // bytes, after idleWindow
	hubRSS         int64 // bytes, same moment
	window         time.Duration
	leafRSSSamples []int64
}

// measureBinary builds the static binary, runs a hub and a linked edge as
// real processes and reads the edge's RSS after idleWindow.
func measureBinary(t *testing.T) binaryResult {
	dir := t.TempDir()
	bin, size := buildBinary(t, dir)
	res := binaryResult{size: size, window: idleWindow}
	t.Logf("static binary: %d bytes (%.1f MB)", res.size, float64(res.size)/1e6)

	store, bundle := filepath.Join(dir, "store"), filepath.Join(dir, "e1.bundle")
	runCmd(t, bin, "init", "--dir", store)
	runCmd(t, bin, "edge", "add", "e1", "--dir", store, "--out", bundle)

	hub := startProcess(t, "hub", bin, "--log-json", "hub", "--store", store, "--data", filepath.Join(dir, "hub-data"),
		"--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0", "--websocket-listen", "off", "--monitor-listen", "off")
	// The hub logs its leafnode URL once it listens (the message text may
	// change; the "leaf" attribute is what counts).
	ready := hub.waitLog(t, "a log line with the leaf URL", 20*time.Second, func(l map[string]any) bool {
		u, _ := l["leaf"].(string)
		return u != ""
	})
	leafURL := ready["leaf"].(string)
	// The bundle names the fabric's default hub URL; point it at this hub.
	b, err := sitefile.LoadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b.HubURLs = []string{leafURL}
	if err := sitefile.WriteBundle(bundle, b); err != nil {
		t.Fatal(err)
	}

	leaf := startProcess(t, "leaf", bin, "--log-json", "leaf", "--bundle", bundle, "--data", filepath.Join(dir, "leaf-data"),
		"--listen", "127.0.0.1:0")
	leaf.waitLog(t, `"edge ready"`, 20*time.Second, hasMsg("edge ready"))
	up := leaf.waitLog(t, `"link up"`, 20*time.Second, hasMsg("link up"))
	t.Logf("edge linked: %v", up)

	// Measurement window: the edge is linked and idle.
	end := time.Now().Add(idleWindow)
	for time.Now().Before(end) {
		time.Sleep(250 * time.Millisecond)
		res.leafRSSSamples = append(res.leafRSSSamples, readRSS(t, leaf.cmd.Process.Pid))
	}
	res.leafRSS = readRSS(t, leaf.cmd.Process.Pid)
	res.hubRSS = readRSS(t, hub.cmd.Process.Pid)
	t.Logf("idle RSS after %s: leaf %.1f MB (samples %v), hub %.1f MB",
		idleWindow, float64(res.leafRSS)/1e6, res.leafRSSSamples, float64(res.hubRSS)/1e6)
	return res
}

// buildBinary builds the static tether binary into dir and returns its
// path and size.
func buildBinary(t *testing.T, dir string) (string, int64) {
	t.Helper()
	bin := filepath.Join(dir, "tether")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/tether")
	build.Dir = moduleRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	return bin, fi.Size()
}

// moduleRoot returns the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside a Go module")
	}
	return filepath.Dir(gomod)
}

func runCmd(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("tether %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// process is a running tether process whose JSON log lines are kept.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its log is read

	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
}

// startProcess starts bin with args and stops it (SIGINT, then SIGKILL
// after 10s) at cleanup.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	return startCmd(t, name, exec.Command(bin, args...))
}

// startCmd is startProcess for a prepared command (environment, process
// attributes); its stderr must carry JSON log lines.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.exited)
		p.collect(stderr) // stderr reaches EOF when the process exits
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if _, ok := p.stop(10 * time.Second); !ok {
			t.Errorf("%s did not stop within 10s of SIGINT; killing it", name)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGINT and waits up to d for the process to exit; it returns
// how long that took and whether it exited. A stopped process stays so.
func (p *process) stop(d time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return time.Since(start), true
	case <-time.After(d):
		return time.Since(start), false
	}
}

func (p *process) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		line := sc.Bytes()
		p.mu.Lock()
		p.raw.Write(line)
		p.raw.WriteByte('\n')
		if json.Unmarshal(line, &m) == nil {
			p.lines = append(p.lines, m)
		}
		p.mu.Unlock()
	}
}

// hasMsg matches a log line by its message.
func hasMsg(msg string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["msg"] == msg }
}

// waitLog waits for a log line that match accepts and returns it; what
// names the line in the failure message.
func (p *process) waitLog(t *testing.T, what string, d time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	deadline := time.Now().Add(d)
	for found == nil {
		p.mu.Lock()
		for _, l := range p.lines {
			if match(l) {
				found = l
				break
			}
		}
		raw := p.raw.String()
		p.mu.Unlock()
		if found != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s log line within %s; log:\n%s", p.name, what, d, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return found
}

// readRSS returns the VmRSS of pid in bytes.
func readRSS(t *testing.T, pid int) int64 {
	t.Helper()
	rss, err := tethertest.ProcRSS(pid)
	if err != nil {
		t.Fatalf("read RSS: %v", err)
	}
	return int64(rss)
}

// logLines returns the log lines that match accepts, so far.
func (p *process) logLines(match func(map[string]any) bool) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}
