package workingset

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrimWhenIdle: a process that collects garbage all the time is never
// trimmed; once it is quiet, it is trimmed every interval; ctx ends it.
func TestTrimWhenIdle(t *testing.T) {
	const interval = 100 * time.Millisecond
	var trims atomic.Int64
	busy, quiet := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a busy process: many collections per interval
		defer wg.Done()
		for {
			select {
			case <-quiet:
				return
			default:
				runtime.GC()
			}
			select {
			case <-busy:
			default:
				close(busy)
			}
		}
	}()
	<-busy
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		TrimWhenIdle(ctx, interval, func(tr IdleTrim) {
			if tr.Err != nil {
				t.Errorf("trim: %v", tr.Err)
			}
			trims.Add(1)
		})
	}()
	for end := time.Now().Add(5 * interval); time.Now().Before(end); {
		time.Sleep(interval / 10) // a workload: the busy goroutine runs meanwhile
	}
	if n := trims.Load(); n != 0 {
		t.Errorf("trimmed %d times while busy, want 0", n)
	}
	close(quiet)
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for trims.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(interval / 10)
	}
	if n := trims.Load(); n < 2 {
		t.Errorf("trimmed %d times in 10s of quiet with interval %s, want at least 2", n, interval)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("TrimWhenIdle still running 5s after its context ended")
	}
}

// TestTrimWhenIdleOff: interval 0 returns at once.
func TestTrimWhenIdleOff(t *testing.T) {
	TrimWhenIdle(context.Background(), 0, func(IdleTrim) { t.Error("trimmed with interval 0") })
}
