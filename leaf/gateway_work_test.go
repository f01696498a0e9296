package leaf

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestGatewayWorkers: calls dispatched at once are served side by side,
// at most gatewayIdleWorkers goroutines wait for the next call
// afterwards, and closing the gateway ends them.
func TestGatewayWorkers(t *testing.T) {
	g := &gateway{next: make(chan *nats.Msg), done: make(chan struct{})}
	// A subject of the wrong shape is counted and dropped: handle returns
	// at once.
	bad := func() *nats.Msg { return &nats.Msg{Subject: "x"} }
	const calls = 100
	var wg sync.WaitGroup
	for range calls {
		wg.Add(1)
		go func() { defer wg.Done(); g.dispatch(bad()) }()
	}
	wg.Wait()
	waitGW(t, func() error {
		if n := g.calls.Load(); n != calls {
			return fmt.Errorf("served %d calls, want %d", n, calls)
		}
		if n := g.idle.Load(); n < 1 || n > gatewayIdleWorkers {
			return fmt.Errorf("%d goroutines wait, want 1 to %d", n, gatewayIdleWorkers)
		}
		return nil
	})
	g.dispatch(bad())
	waitGW(t, func() error {
		if n := g.calls.Load(); n != calls+1 {
			return fmt.Errorf("served %d calls, want %d", n, calls+1)
		}
		if n := g.idle.Load(); n < 1 || n > gatewayIdleWorkers {
			return fmt.Errorf("%d goroutines wait after one more call, want 1 to %d", n, gatewayIdleWorkers)
		}
		return nil
	})
	close(g.done)
	waitGW(t, func() error {
		if n := g.idle.Load(); n != 0 {
			return fmt.Errorf("%d goroutines still wait after close, want 0", n)
		}
		return nil
	})
}

func waitGW(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
