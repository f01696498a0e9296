package leaf

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestWaitReadyHonoursCancel: a signal during start-up (ctx cancelled)
// ends the wait for a server that is not ready, at once rather than after
// the 15 s readiness timeout; a fatal error of the server ends it too.
func TestWaitReadyHonoursCancel(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	// Never started: never ready.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := waitReady(ctx, ns, make(chan error), readyTimeout); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitReady = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("waitReady returned %s after the cancel, want at once", took)
	}

	fatal := make(chan error, 1)
	fatal <- errors.New("Can't start JetStream: boom")
	start = time.Now()
	err = waitReady(context.Background(), ns, fatal, readyTimeout)
	if err == nil || err.Error() != "the embedded server did not start: Can't start JetStream: boom" {
		t.Fatalf("waitReady = %v, want the server's fatal error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("waitReady returned after %s, want at once", took)
	}
}
