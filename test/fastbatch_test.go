package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestFastBatchThroughImport pins what the forwarder's fast batches rely
// on: a fast batch published at the edge on tether.up.telemetry.> crosses
// the leaf link and the edge account's service import into the CLOUD
// stream, and the stream's flow acks and PubAck come back on the original
// reply (the hub carries it in Nats-Request-Info). Raw protocol, so a
// change in nats-server shows here rather than as a slow forwarder.
func TestFastBatchThroughImport(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	// The edge's own connection: site clients may not publish on
	// tether.up.> (and only _TETHER_INBOX.> crosses the link back).
	nc := f.leaf.InternalConn()
	inbox := contract.UplinkInbox + ".fbtest"
	sub, err := nc.SubscribeSync(inbox + ".>")
	if err != nil {
		t.Fatal(err)
	}
	// The hub learns the inbox's interest and the telemetry import's
	// interest reaches the edge: a plain request proves the path.
	tethertest.WaitFor(t, 10*time.Second, func() error {
		_, err := nc.Request(contract.UplinkPrefix+"telemetry.probe", []byte("probe"), time.Second)
		return err
	})
	reply := func(seq, op int) string { return fmt.Sprintf("%s.b1.2.fail.%d.%d.$FI", inbox, seq, op) }
	type answer struct {
		Type  string `json:"type"`
		Seq   uint64 `json:"seq"`
		Msgs  int    `json:"msgs"`
		Batch string `json:"batch"`
		Count int    `json:"count"`
		Error any    `json:"error"`
	}
	next := func() answer {
		t.Helper()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no answer from the cloud stream: %v", err)
		}
		var a answer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatalf("answer %q: %v", m.Data, err)
		}
		if a.Error != nil {
			t.Fatalf("cloud stream refused: %s", m.Data)
		}
		return a
	}
	for i := 1; i <= 4; i++ {
		op := 1
		if i == 1 {
			op = 0
		}
		m := &nats.Msg{Subject: contract.UplinkPrefix + "telemetry.fb", Reply: reply(i, op), Data: []byte(fmt.Sprint(i))}
		m.Header = nats.Header{nats.MsgIdHdr: []string{fmt.Sprintf("fbtest-%d", i)}}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// Flow 2: the batch's start is answered with seq 0, then every
	// second message.
	for _, want := range []uint64{0, 2, 4} {
		if a := next(); a.Type != "ack" || a.Seq != want || a.Msgs != 2 {
			t.Fatalf("got %+v, want a flow ack for %d every 2", a, want)
		}
	}
	if err := nc.PublishMsg(&nats.Msg{Subject: contract.UplinkPrefix + "telemetry.fb", Reply: reply(5, 3)}); err != nil {
		t.Fatal(err)
	}
	if a := next(); a.Type != "" || a.Batch != "b1" || a.Count != 4 {
		t.Fatalf("got %+v, want the PubAck of batch b1 with 4 messages", a)
	}
	js, err := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("edges.plant-7.telemetry.fb"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects["edges.plant-7.telemetry.fb"]; n != 4 {
		t.Fatalf("cloud holds %d messages of the batch, want 4", n)
	}
}

// TestSteadyTrickleBacklog: a producer that publishes steadily, a message
// every 10 ms (less than the forwarder's batch idle time), keeps one fast
// batch open for minutes. The edge must still drop what the cloud
// confirmed from its buffer as it goes: its backlog stays near zero and it
// never reports itself stalled. (Found by TestSoak: at 200 msg/s the
// buffer was purged only every 4096 confirmed messages, so an edge that
// was caught up showed up to 20 s of backlog, and stalled after
// stall_after.)
func TestSteadyTrickleBacklog(t *testing.T) {
	f := newFabric(t, fastReports) // stall_after 2s
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	const total, every = 800, 10 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var worst uint64
	for i := 0; i < total; i++ {
		<-tick.C
		if _, err := f.edge.Publish(ctx, "telemetry.p1", fmt.Appendf(nil, "p1:%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%50 != 49 {
			continue
		}
		b := f.leaf.Status().Buffer
		if b.Stalled {
			t.Fatalf("after %d messages at one per %s the edge reports itself stalled: %+v", i+1, every, b)
		}
		if i >= 200 { // the first session has settled
			worst = max(worst, b.BacklogMsgs)
		}
	}
	t.Logf("largest backlog the edge reported while publishing: %d messages", worst)
	// Two seconds' worth: what is in flight plus what was confirmed since
	// the last purge.
	if limit := uint64(2 * time.Second / every); worst > limit {
		t.Errorf("the edge reported up to %d messages waiting while the cloud kept up, want at most %d", worst, limit)
	}
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, total, 10*time.Second)
	if err := c.verify(map[string]int{"p1": total}); err != nil {
		t.Fatal(err)
	}
}

// TestBatchMarkerOffDataSubjects: the forwarder's end-of-batch marker (a
// fast-batch commit the stream never stores) is sent on
// edges.<edge>.telemetry._tether.eob: a live subscriber in CLOUD on a data
// subject receives exactly what the site published there, never an empty
// extra message after a burst (it did while the marker went on the batch's
// last subject).
func TestBatchMarkerOffDataSubjects(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	data, err := f.cloud.SubscribeSync("edges.plant-7.telemetry.burst")
	if err != nil {
		t.Fatal(err)
	}
	markers, err := f.cloud.SubscribeSync("edges.plant-7." + contract.BatchEndSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cloud.Flush(); err != nil {
		t.Fatal(err)
	}
	site := tethertest.Connect(t, f.leaf.ClientURL())
	const n = 200
	for i := range n {
		if err := site.Publish("telemetry.burst", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := site.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := data.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, n, err)
		}
		if want := fmt.Sprintf("m%d", i); string(m.Data) != want {
			t.Fatalf("message %d on %s: got %q (headers %v), want %q", i, m.Subject, m.Data, m.Header, want)
		}
	}
	// Nothing more on the data subject once the buffer is empty.
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if b := f.leaf.Status().Buffer; b.BacklogMsgs > 0 {
			return fmt.Errorf("backlog %d", b.BacklogMsgs)
		}
		return nil
	})
	if m, err := data.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("an extra message on %s after the burst: %q (headers %v)", m.Subject, m.Data, m.Header)
	}
	// The burst crossed as batches: their markers came on their own subject.
	if _, err := markers.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no end-of-batch marker on %s after a burst of %d: %v", contract.BatchEndSubject, n, err)
	}
}
