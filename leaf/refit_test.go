package leaf_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

const MiB = 1 << 20

// refitEdge is an edge with no reachable hub (everything stays in its
// buffer) whose filesystem room the test sets.
type refitEdge struct {
	leaf *leaf.Server
	js   jetstream.JetStream
	log  *tethertest.LogBuffer
	room atomic.Uint64
}

// startRefitEdge starts an edge with a 64 MiB buffer budget on a
// filesystem with 1 GiB of room, refitting every 20ms.
func startRefitEdge(t *testing.T, whenFull string) *refitEdge {
	t.Helper()
	store := tethertest.NewStore(t)
	tethertest.AddEdge(t, store, "plant-7")
	c := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + tethertest.FreeAddr(t)}, nil))
	c.BufferMaxBytes, c.BufferFull, c.BudgetRefitInterval = 64*MiB, whenFull, 20*time.Millisecond
	e := &refitEdge{log: &tethertest.LogBuffer{}}
	e.room.Store(1 << 30)
	l, err := leaf.New(c, e.log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	leaf.SetMeasureRoom(l, func(string) (uint64, uint64, error) {
		room := e.room.Load()
		return room / 2, room, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	e.leaf = l
	if e.js, err = jetstream.New(tethertest.Connect(t, l.ClientURL())); err != nil {
		t.Fatal(err)
	}
	return e
}

// publish stores n messages of 1 KiB, each acknowledged by the edge.
func (e *refitEdge) publish(t *testing.T, n int) {
	t.Helper()
	payload := []byte(strings.Repeat("x", 1024))
	for i := 0; i < n; i++ {
		if _, err := e.js.PublishAsync("telemetry.refit", payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(20 * time.Second):
		t.Fatalf("%d publishes not acknowledged after 20s", e.js.PublishAsyncPending())
	}
}

// buffer returns the buffer stream's state and budget.
func (e *refitEdge) buffer(t *testing.T) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, leaf.BufferStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitBudget waits until accept takes the buffer stream's MaxBytes and
// returns how long that took.
func (e *refitEdge) waitBudget(t *testing.T, what string, accept func(maxBytes int64) bool) time.Duration {
	t.Helper()
	start := time.Now()
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if got := e.buffer(t).Config.MaxBytes; !accept(got) {
			return fmt.Errorf("%s: buffer MaxBytes is %d", what, got)
		}
		return nil
	})
	return time.Since(start)
}

// waitLog waits until the edge logged every one of want (a refit logs
// after the stream's update).
func (e *refitEdge) waitLog(t *testing.T, want ...string) {
	t.Helper()
	tethertest.WaitFor(t, 5*time.Second, func() error {
		for _, w := range want {
			if !e.log.Contains(w) {
				return fmt.Errorf("log lacks %q:\n%s", w, e.log)
			}
		}
		return nil
	})
}

// TestBudgetRefitKeepsAcked: with buffer_full reject, a refit whose room
// asks for a budget below what the buffer holds stops at what it holds:
// every acknowledged message stays, the next publish is refused with
// "maximum bytes exceeded", the status shows the budget in effect and the
// buffer full; when room returns the budget goes back to the configured
// one and publishes are taken again.
func TestBudgetRefitKeepsAcked(t *testing.T) {
	e := startRefitEdge(t, leaf.BufferReject)
	if got := e.buffer(t).Config.MaxBytes; got != 64*MiB {
		t.Fatalf("budget at start %d, want the configured %d", got, 64*MiB)
	}
	const n = 4000
	e.publish(t, n)
	before := e.buffer(t).State
	// 3/4 of 88 MiB minus the commands stream's 64 MiB: a 2 MiB budget,
	// less than the ~4.3 MiB the buffer holds.
	e.room.Store(88 * MiB)
	took := e.waitBudget(t, "cut", func(m int64) bool { return m < 64*MiB })
	// Logged once the update is done (a stream info can see the new
	// MaxBytes while the update still runs).
	e.waitLog(t, "buffer budget cut to fit the filesystem", "held_at_backlog=true", "old_budget_bytes=67108864")
	info := e.buffer(t)
	if info.Config.MaxBytes != int64(before.Bytes) {
		t.Fatalf("budget cut to %d, want what the buffer holds, %d", info.Config.MaxBytes, before.Bytes)
	}
	if info.State.Msgs != n || info.State.FirstSeq != 1 || info.State.Bytes != before.Bytes {
		t.Fatalf("after the cut the buffer holds %d msgs from seq %d (%d bytes); want all %d from seq 1 (%d bytes)",
			info.State.Msgs, info.State.FirstSeq, info.State.Bytes, n, before.Bytes)
	}
	t.Logf("room cut to 88 MiB: budget %d -> %d (what the buffer holds) in %s", 64*MiB, info.Config.MaxBytes, took)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, "telemetry.refit", []byte("one more")); err == nil || !strings.Contains(err.Error(), "maximum bytes exceeded") {
		t.Fatalf("publish after the cut: %v, want a 'maximum bytes exceeded' refusal", err)
	}
	if st := e.leaf.Status().Buffer; st.MaxBytes != info.Config.MaxBytes || !st.Full || st.BacklogMsgs != n {
		t.Fatalf("status buffer %+v; want budget %d, full, %d msgs", st, info.Config.MaxBytes, n)
	}

	e.room.Store(1 << 30)
	took = e.waitBudget(t, "raised", func(m int64) bool { return m == 64*MiB })
	t.Logf("room back: budget raised to %d in %s", 64*MiB, took)
	e.waitLog(t, "buffer budget raised: the filesystem has room again")
	e.publish(t, 1)
	if info := e.buffer(t); info.State.Msgs != n+1 || info.State.FirstSeq != 1 {
		t.Fatalf("after the raise the buffer holds %d msgs from seq %d, want %d from seq 1", info.State.Msgs, info.State.FirstSeq, n+1)
	}
}

// TestBudgetRefitDropOldest: with buffer_full drop_oldest a cut below what
// the buffer holds drops the oldest messages down to the new budget, as
// the policy does when the buffer is full; a budget below the minimum
// stays at 1 MiB.
func TestBudgetRefitDropOldest(t *testing.T) {
	e := startRefitEdge(t, leaf.BufferDropOldest)
	const n = 4000
	e.publish(t, n)
	e.room.Store(88 * MiB) // a 2 MiB budget
	e.waitBudget(t, "cut", func(m int64) bool { return m == 2*MiB })
	e.waitLog(t, "dropped_oldest_bytes=")
	info := e.buffer(t)
	if info.State.Bytes > 2*MiB || info.State.FirstSeq == 1 || info.State.LastSeq != n {
		t.Fatalf("after the cut the buffer holds seqs %d-%d (%d bytes); want the newest, at most %d bytes",
			info.State.FirstSeq, info.State.LastSeq, info.State.Bytes, 2*MiB)
	}
	t.Logf("drop_oldest cut to 2 MiB: kept seqs %d-%d, dropped %d", info.State.FirstSeq, info.State.LastSeq, info.State.FirstSeq-1)
	e.room.Store(MiB)
	e.waitBudget(t, "minimum", func(m int64) bool { return m == MiB })
	e.waitLog(t, "below_minimum_bytes=1048576")
	e.publish(t, 10)
}
