package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binaryState is the tether binary built once per test run for the
// end-to-end tests, and removed by TestMain.
var binaryState struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain removes the tether binary built by tetherBinary, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaryState.dir != "" {
		os.RemoveAll(binaryState.dir)
	}
	os.Exit(code)
}

// tetherBinary returns the path of the tether binary, building it on first
// use (with -race when the tests run with -race, so a race in the real
// process fails its exit-code check). Tests that need it skip under -short.
func tetherBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the tether binary; skipped with -short")
	}
	binaryState.once.Do(func() {
		dir, err := os.MkdirTemp("", "tether-binary-test-")
		if err != nil {
			binaryState.err = err
			return
		}
		binaryState.dir = dir
		binaryState.path = filepath.Join(dir, "tether")
		args := []string{"build", "-o", binaryState.path}
		if binaryRace {
			args = append(args, "-race")
		}
		args = append(args, "github.com/tether-fabric/tether/cmd/tether")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			binaryState.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if binaryState.err != nil {
		t.Fatalf("build tether: %v", binaryState.err)
	}
	return binaryState.path
}

// runBinary runs tether with args to completion (at most 30s) and returns
// its stdout; it fails the test if tether fails.
func runBinary(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tetherBinary(t), args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tether %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.Bytes()
}

// binaryProcess is a tether process running in the background. Cleanup
// kills it if the test has not stopped it, and logs its output if the test
// failed.
type binaryProcess struct {
	name   string
	cmd    *exec.Cmd
	stdout binaryBuffer
	stderr binaryBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done is closed
}

// startBinary starts tether with args in the background.
func startBinary(t *testing.T, name string, args ...string) *binaryProcess {
	t.Helper()
	return startProcess(t, name, exec.Command(tetherBinary(t), args...))
}

// startProcess starts cmd in the background, with the same cleanup and
// output capture as startBinary.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *binaryProcess {
	t.Helper()
	p := &binaryProcess{name: name, done: make(chan struct{}), cmd: cmd}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) still running 10s after SIGKILL", name, p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout.String(), name, p.stderr.String())
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *binaryProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalAndWait sends sig and returns the exit code, failing the test if
// the process is still running after timeout.
func (p *binaryProcess) signalAndWait(t *testing.T, sig os.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
	start := time.Now()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after %s", p.name, timeout, sig)
	}
	t.Logf("%s exited %s after %s", p.name, time.Since(start).Round(time.Millisecond), sig)
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("wait for %s: %v", p.name, p.err)
		return -1
	}
}

// waitLogJSON waits until the process (run with --log-json) logs a line
// whose msg is msg, and returns that line's attributes.
func (p *binaryProcess) waitLogJSON(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	return p.waitLogJSONWhere(t, msg, timeout, nil)
}

// waitLogJSONWhere is waitLogJSON for the first such line for which match
// (if not nil) is true.
func (p *binaryProcess) waitLogJSONWhere(t *testing.T, msg string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	binaryWaitFor(t, timeout, fmt.Sprintf("%s to log %q", p.name, msg), func() error {
		if line := p.stderr.jsonLine("msg", msg, match); line != nil {
			found = line
			return nil
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q", p.name, p.err, msg)
		}
		return errors.New("not logged yet")
	})
	return found
}

// binaryWaitFor polls cond every 50ms until it returns nil, failing the
// test with cond's last error if that takes longer than timeout.
func binaryWaitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronization
	}
}

// binaryBuffer collects a process's output; it is safe to read while the
// process writes.
type binaryBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *binaryBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *binaryBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// jsonLine returns the first complete JSON log line whose key equals value.
func (b *binaryBuffer) jsonLine(key, value string, match func(map[string]any) bool) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line[key] == value && (match == nil || match(line)) {
			return line
		}
	}
	return nil
}
