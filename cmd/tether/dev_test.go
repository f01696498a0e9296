package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// devRun is a 'tether dev' running in process, with its output.
type devRun struct {
	stdout, stderr tethertest.LogBuffer
	cancel         context.CancelFunc
	done           chan error
}

// startDev runs 'tether dev' on free ports in dir at the given log level
// and waits for its tour.
func startDev(t *testing.T, dir string, level slog.Level) *devRun {
	t.Helper()
	r := &devRun{done: make(chan error, 1)}
	d := &deps{stdin: strings.NewReader(""), stdout: &r.stdout, stderr: &r.stderr, logLevel: new(slog.LevelVar), logJSON: new(bool)}
	d.logLevel.Set(level)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- runDev(ctx, d, dir, devPorts{0, 0, 0, 0, []int{0, 0}}) }()
	t.Cleanup(func() { r.stop(t) })
	tethertest.WaitFor(t, 30*time.Second, func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("tether dev stopped: %v\n%s", err, r.stderr.String())
		default:
		}
		if !r.stdout.Contains("Tether dev fabric is up") {
			return errors.New("no tour yet")
		}
		return nil
	})
	return r
}

func (r *devRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Errorf("tether dev: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tether dev did not stop within 20s of its cancel")
	}
}

// TestDevTour: 'tether dev' in a directory that is not the default prints
// a few lines of its own before the tour (the embedded servers' banners
// only at debug level), a tour whose every --dev command names that
// directory (as does the header of the policy file it writes), and
// commands given the directory as --dir find the fabric.
// After one of its edges was revoked it starts again, making the edge anew.
func TestDevTour(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir()) // the default dev dir is elsewhere
	dir := filepath.Join(t.TempDir(), "my dev")
	r := startDev(t, dir, slog.LevelInfo)

	const maxLines = 15
	logLines := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	if len(logLines) > maxLines || r.stderr.Contains("JETSTREAM") || r.stderr.Contains("Starting nats-server") {
		t.Errorf("tether dev logged %d lines before its tour, want at most %d and no nats-server banners:\n%s",
			len(logLines), maxLines, r.stderr.String())
	}
	tour := r.stdout.String()
	quoted := "'" + dir + "'"
	var devLines int
	for _, line := range strings.Split(tour, "\n") {
		if strings.Contains(line, " --dev") {
			devLines++
			if !strings.Contains(line, "--dev --dev-dir "+quoted) {
				t.Errorf("tour line %q lacks --dev-dir %s", line, quoted)
			}
		}
	}
	if devLines < 5 || !strings.Contains(tour, "status --dev --dev-dir "+quoted+"\n") {
		t.Errorf("tour has %d --dev lines, want every one (status included) with --dev-dir:\n%s", devLines, tour)
	}

	// The policy file's header names this fabric too.
	policy, err := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantApply := "#   tether policy apply " + shellQuote(filepath.Join(dir, "policy.yaml")) + " --dev --dev-dir " + quoted + "\n"
	if !strings.Contains(string(policy), wantApply) {
		t.Errorf("policy.yaml's header lacks %q:\n%s", wantApply, policy)
	}

	// --dir names the dev dir too (or its store).
	for _, args := range [][]string{
		{"edge", "ls", "--dev", "--dir", dir},
		{"edge", "ls", "--dev", "--dir", filepath.Join(dir, "store")},
		{"status", "--dev", "--dir", dir},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 || !strings.Contains(stdout, "dev-a") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the dev fabric's edges", args, code, stdout, stderr)
		}
	}

	// Revoke dev-b (as a user trying 'edge revoke' would), stop, start again.
	info, err := readDevInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "edge", "revoke", "dev-b", "--dir", filepath.Join(dir, "store"), "--push", info.Hub.ClientURL); code != 0 {
		t.Fatalf("edge revoke dev-b: exit %d: %s", code, stderr)
	}
	r.stop(t)
	r2 := startDev(t, dir, slog.LevelDebug)
	if !r2.stderr.Contains(`msg="dev edge was revoked; made it again with a new account and an empty buffer" edge=dev-b`) {
		t.Errorf("restart after a revoked dev edge: no word of it making the edge again:\n%s", r2.stderr.String())
	}
	// At debug level the servers' own lines are there.
	if !r2.stderr.Contains("Starting nats-server") {
		t.Errorf("--log-level debug: no nats-server lines in the log")
	}
	code, stdout, stderr := runCLI(t, "edge", "ls", "--dev", "--dev-dir", dir)
	if code != 0 || !strings.Contains(stdout, "\ndev-b ") {
		t.Errorf("edge ls after the restart: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		// NAME LINK SINCE HUB RTT VERSION REVOKED ACCOUNT
		if f := strings.Fields(line); len(f) == 8 && f[0] == "dev-b" && (f[1] != "online" || f[6] != "-") {
			t.Errorf("dev-b after the restart: %q, want online and not revoked", line)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.json")); err != nil {
		t.Errorf("dev.json: %v", err)
	}
}
