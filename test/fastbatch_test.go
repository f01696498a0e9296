package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
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
	inbox := policy.UplinkInbox + ".fbtest"
	sub, err := nc.SubscribeSync(inbox + ".>")
	if err != nil {
		t.Fatal(err)
	}
	// The hub learns the inbox's interest and the telemetry import's
	// interest reaches the edge: a plain request proves the path.
	tethertest.WaitFor(t, 10*time.Second, func() error {
		_, err := nc.Request(policy.UplinkPrefix+"telemetry.probe", []byte("probe"), time.Second)
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
		m := &nats.Msg{Subject: policy.UplinkPrefix + "telemetry.fb", Reply: reply(i, op), Data: []byte(fmt.Sprint(i))}
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
	if err := nc.PublishMsg(&nats.Msg{Subject: policy.UplinkPrefix + "telemetry.fb", Reply: reply(5, 3)}); err != nil {
		t.Fatal(err)
	}
	if a := next(); a.Type != "" || a.Batch != "b1" || a.Count != 4 {
		t.Fatalf("got %+v, want the PubAck of batch b1 with 4 messages", a)
	}
	js, err := jetstream.NewWithDomain(f.cloud, hub.JetStreamDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, hub.TelemetryStream)
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
