package test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestLeafSIGKILLMidStream: the real 'tether leaf' is SIGKILLed while a
// local producer publishes and the forwarder sends to the cloud, then
// started again on the same data directory. Every message the edge
// acknowledged reaches the cloud exactly once and in order; messages that
// were in flight but never acknowledged may be missing, but are never
// duplicated or out of order. (A process crash keeps what the kernel holds
// in its page cache: only a power loss could lose acknowledged data within
// sync_interval.)
func TestLeafSIGKILLMidStream(t *testing.T) {
	tetherBinary(t) // build (or skip under -short) before anything is timed
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	bundle := tethertest.BundleFile(t, store, "plant-7", []string{h.LeafURL()}, nil)
	data := t.TempDir()
	cloud := tethertest.ConnectCloud(t, store, h)
	linked := func(st leaf.Status) error {
		if !st.Link.Connected {
			return fmt.Errorf("link down: %+v", st.Link)
		}
		return nil
	}

	const total, killAt = 8000, 3000
	first := startCrashLeaf(t, "tether leaf (1st run)", bundle, data)
	origin := first.waitStatus(t, 15*time.Second, "link up", linked).Buffer.Origin
	js, err := jetstream.New(first.nc, jetstream.WithPublishAsyncMaxPending(512),
		jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var killed time.Time // set by the publishing goroutine, read after it ends
	var killErr error
	pub := startCrashPublisher(js, "p1", total, func(acked int) {
		if acked == killAt {
			killed, killErr = time.Now(), first.kill()
		}
	})
	sent, ok, pubErr := pub.wait(t, 30*time.Second)
	if killErr != nil {
		t.Fatalf("SIGKILL tether leaf: %v", killErr)
	}
	select {
	case <-first.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("tether leaf still running 10s after SIGKILL")
	}
	acked := 0
	for _, a := range ok {
		if a {
			acked++
		}
	}
	if killed.IsZero() || sent == total && acked == total {
		t.Fatalf("the edge was not killed mid-stream: %d sent, %d acknowledged (%v)", sent, acked, pubErr)
	}
	atKill := crashCloudCount(t, cloud, "plant-7")
	t.Logf("SIGKILL after %s: %d published, %d acknowledged by the edge, %d in the cloud; publisher stopped on: %v",
		killed.Sub(start).Round(time.Millisecond), sent, acked, atKill, pubErr)

	second := startCrashLeaf(t, "tether leaf (2nd run)", bundle, data)
	restarted := time.Now()
	st := second.waitStatus(t, 15*time.Second, "link up", linked)
	t.Logf("restarted on the same data: backlog %d messages, origin %s (was %s)", st.Buffer.BacklogMsgs, st.Buffer.Origin, origin)
	if st.Buffer.Origin != origin {
		t.Errorf("buffer origin changed across a crash (%s -> %s): the edge did not recover its store", origin, st.Buffer.Origin)
	}
	js2, err := jetstream.New(second.nc, jetstream.WithPublishAsyncMaxPending(512))
	if err != nil {
		t.Fatal(err)
	}
	crashPublish(t, js2, "p1", sent, total)
	second.waitStatus(t, 30*time.Second, "backlog delivered", func(st leaf.Status) error {
		if st.Buffer.BacklogMsgs != 0 {
			return fmt.Errorf("backlog %d messages (last error %q)", st.Buffer.BacklogMsgs, st.Buffer.LastError)
		}
		return nil
	})
	t.Logf("backlog delivered %s after the restart", time.Since(restarted).Round(time.Millisecond))

	// The edge's buffer is empty, so the cloud holds all it will ever get.
	n := crashCloudCount(t, cloud, "plant-7")
	msgs := crashReadCloud(t, cloud, "plant-7", n, 30*time.Second)
	if err := crashVerify(msgs, total, func(i int) bool { return i >= sent || ok[i] }); err != nil {
		t.Fatal(err)
	}
	for k, m := range msgs {
		if m.origin != origin {
			t.Fatalf("cloud message %d (p1:%d) has origin %q, want %q", k, m.idx, m.origin, origin)
		}
		if k > 0 && m.seq <= msgs[k-1].seq {
			t.Fatalf("cloud message %d (p1:%d) has edge seq %d after %d", k, m.idx, m.seq, msgs[k-1].seq)
		}
	}
	t.Logf("cloud holds %d of %d published (%d acknowledged before the kill, %d unacknowledged in flight)",
		n, total, acked, sent-acked)
}

// TestEdgeStoreWiped: an edge whose data directory is lost (disk replaced,
// directory deleted) starts a new buffer with a new origin, so its new
// messages (whose buffer sequence numbers start again at 1) get message
// ids that the cloud's dedup window has not seen, and all of them arrive.
// The reset is visible in the edge's status (Buffer.Origin) and in the
// cloud (Tether-Origin changes, Tether-Seq restarts).
func TestEdgeStoreWiped(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	cutLink(t, f.proxy, f.leaf)
	const before, after = 2000, 2000
	crashPublish(t, f.edge, "p1", 0, before)
	old := f.leaf.Status().Buffer
	if old.BacklogMsgs != before || old.Origin == "" {
		t.Fatalf("offline edge buffer = %+v, want %d messages and an origin", old, before)
	}
	f.proxy.SetMode(netproxy.Pass)
	tethertest.WaitFor(t, 20*time.Second, func() error {
		if st := f.leaf.Status().Buffer; st.BacklogMsgs != 0 {
			return fmt.Errorf("backlog not delivered: %+v", st)
		}
		return nil
	})

	if err := f.leaf.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	f.startLeaf(t)
	fresh := f.leaf.Status().Buffer
	t.Logf("buffer origin %s before the wipe, %s after", old.Origin, fresh.Origin)
	if fresh.Origin == "" || fresh.Origin == old.Origin {
		t.Fatalf("after wiping the store the buffer origin is %q (was %q), want a new one", fresh.Origin, old.Origin)
	}
	if fresh.BacklogMsgs != 0 || fresh.Forwarded != 0 {
		t.Fatalf("wiped edge's buffer = %+v, want empty", fresh)
	}
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	crashPublish(t, f.edge, "p1", before, before+after)

	msgs := crashReadCloud(t, f.cloud, "plant-7", before+after, 30*time.Second)
	if err := crashVerify(msgs, before+after, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}
	for k, m := range msgs {
		want := crashCloudMsg{producer: "p1", idx: k, origin: old.Origin, seq: uint64(k + 1)}
		if k >= before {
			want = crashCloudMsg{producer: "p1", idx: k, origin: fresh.Origin, seq: uint64(k - before + 1)}
		}
		if m != want {
			t.Fatalf("cloud message %d = %+v, want %+v", k, m, want)
		}
	}
	// Nothing more arrives (say, a replay of the old buffer).
	if n := crashCloudCount(t, f.cloud, "plant-7"); n != before+after {
		t.Fatalf("cloud holds %d messages, want %d", n, before+after)
	}
}

// TestHubKilledDuringCatchUp: in a 3-hub cluster, an edge that was offline
// catches up a large backlog; in the middle of the catch-up the hub it is
// attached to shuts down. The edge moves to another hub and the cloud
// (read through a surviving hub) ends with exactly everything, in order,
// within a bound.
func TestHubKilledDuringCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	const (
		backlog    = 20000
		rateSample = 4000 // forwarded messages over which the catch-up rate is measured
		// failoverSlack covers noticing the dead link, re-attaching to
		// another hub and, if the dead hub led the CLOUD stream, electing
		// a new leader.
		failoverSlack = 3 * time.Second
	)
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	tethertest.AddEdge(t, store, "plant-7", hubs...)
	proxies, urls := proxyHubs(t, hubs)
	l := backlogBehind(t, store, proxies, urls, backlog)
	if st := l.Status().Buffer; st.BacklogMsgs != backlog {
		t.Fatalf("offline edge buffer = %+v, want %d messages", st, backlog)
	}

	for _, p := range proxies {
		p.SetMode(netproxy.Pass)
	}
	healed := time.Now()
	// Measure the catch-up rate on the first hub, then shut that hub down
	// with most of the backlog still on the edge.
	var t1, t2 time.Time
	var f1, f2 uint64
	tethertest.WaitFor(t, 20*time.Second, func() error {
		st := l.Status().Buffer
		if st.Forwarded == 0 {
			return fmt.Errorf("catch-up not started: %+v, link %+v", st, l.Link())
		}
		t1, f1 = time.Now(), st.Forwarded
		return nil
	})
	var link leaf.Link
	tethertest.WaitFor(t, 30*time.Second, func() error {
		st := l.Status()
		if st.Buffer.Forwarded < f1+rateSample {
			return fmt.Errorf("catch-up slow: %+v, link %+v", st.Buffer, st.Link)
		}
		t2, f2, link = time.Now(), st.Buffer.Forwarded, st.Link
		return nil
	})
	rate := float64(f2-f1) / t2.Sub(t1).Seconds()
	var attached, survivor *hub.Server
	for i, p := range proxies {
		if p.Addr() == link.Hub {
			attached = hubs[i]
		}
	}
	if attached == nil {
		t.Fatalf("edge attached to %s, which is none of the proxies", link.Hub)
	}
	for _, h := range hubs {
		if h != attached {
			survivor = h
			break
		}
	}
	killed := time.Now()
	if err := attached.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	remaining := backlog - int(f2)
	if remaining < backlog/2 {
		t.Fatalf("catch-up too far along (%d of %d forwarded) when the hub shut down", f2, backlog)
	}
	t.Logf("catch-up on the first hub: %.0f msg/s; hub behind %s shut down %s after the heal with %d of %d forwarded",
		rate, link.Hub, killed.Sub(healed).Round(time.Millisecond), f2, backlog)

	tethertest.WaitFor(t, 60*time.Second, func() error {
		if st := l.Status().Buffer; st.BacklogMsgs != 0 {
			return fmt.Errorf("edge buffer: %+v, link %+v", st, l.Link())
		}
		return nil
	})
	after := time.Since(killed)
	bound := failoverSlack + time.Duration(2*float64(remaining)/rate*float64(time.Second))
	t.Logf("backlog delivered %s after the hub shut down (bound %s), %s after the heal; edge now on %s",
		after.Round(time.Millisecond), bound.Round(time.Millisecond), time.Since(healed).Round(time.Millisecond), l.Link().Hub)

	cloud := tethertest.ConnectCloud(t, store, survivor)
	msgs := crashReadCloud(t, cloud, "plant-7", backlog, 60*time.Second)
	if err := crashVerify(msgs, backlog, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if n := crashCloudCount(t, cloud, "plant-7"); n != backlog {
		t.Fatalf("cloud holds %d messages, want %d", n, backlog)
	}

	// The edge re-attaches within a second; the rest of the backlog should
	// then flow about as fast as before the failover.
	t.Run("prompt", func(t *testing.T) {
		if after > bound {
			t.Errorf("the rest of the backlog (%d) took %s after the hub shut down, want at most %s (%s slack + twice the time at the %.0f msg/s of before)",
				remaining, after.Round(time.Millisecond), bound.Round(time.Millisecond), failoverSlack, rate)
		}
	})
}
