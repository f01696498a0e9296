package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// runUntil runs the CLI with args until its stderr contains each of
// wants, then stops it as a signal would, and returns what it logged.
func runUntil(t *testing.T, wants []string, args ...string) string {
	t.Helper()
	var stdout, stderr tethertest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	tethertest.WaitFor(t, 30*time.Second, func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("%v: exit %d before logging %q:\n%s", args, code, wants, stderr.String())
		default:
		}
		for _, w := range wants {
			if !stderr.Contains(w) {
				return fmt.Errorf("no %q in the log yet", w)
			}
		}
		return nil
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("%v: exit %d after its stop:\n%s", args, code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%v did not stop within 20s of its cancel", args)
	}
	return stderr.String()
}

// TestHubAndLeafLogQuietly: 'tether hub' and 'tether leaf' log their own
// lifecycle lines and the embedded server's errors, not its start-up
// banner; --log-level debug shows the banner too.
func TestHubAndLeafLogQuietly(t *testing.T) {
	store := tethertest.NewStore(t)
	banners := []string{"Starting nats-server", "_ ___", "Server is ready"}

	hubLog := runUntil(t, []string{"hub listening"}, "hub", "--store", store.Dir(), "--data", filepath.Join(t.TempDir(), "hub"),
		"--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0", "--websocket-listen", "off", "--monitor-listen", "off")
	for _, b := range banners {
		if strings.Contains(hubLog, b) {
			t.Errorf("tether hub logged the server's %q at info level:\n%s", b, hubLog)
		}
	}

	// The edge's hub refuses connections: the server's errors must show.
	tethertest.AddEdge(t, store, "e1")
	bundle := tethertest.BundleFile(t, store, "e1", []string{"tls://127.0.0.1:1"}, nil)
	leafArgs := []string{"leaf", "--bundle", bundle, "--listen", "127.0.0.1:0"}
	// Its own start-up line, and the server's error.
	wants := []string{`msg="edge ready"`, "Error trying to connect as leafnode"}
	leafLog := runUntil(t, wants, append(leafArgs, "--data", t.TempDir())...)
	for _, b := range banners {
		if strings.Contains(leafLog, b) {
			t.Errorf("tether leaf logged the server's %q at info level:\n%s", b, leafLog)
		}
	}
	if n := strings.Count(strings.TrimSpace(leafLog), "\n") + 1; n > 15 {
		t.Errorf("tether leaf logged %d lines before it was ready, want at most 15:\n%s", n, leafLog)
	}

	debugLog := runUntil(t, wants, append(leafArgs, "--data", t.TempDir(), "--log-level", "debug")...)
	if !strings.Contains(debugLog, "Starting nats-server") {
		t.Errorf("tether leaf --log-level debug: no nats-server banner:\n%s", debugLog)
	}
}
