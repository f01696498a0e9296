package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// idleWindow is how long TestIdleEdgeQuiet watches a linked edge doing
// nothing: an observation window, not a synchronization.
const idleWindow = 5 * time.Second

// TestIdleEdgeQuiet: an idle linked edge does not keep asking its own
// JetStream for the buffer's state, nor the hub for commands (it used to
// read the buffer 12 times a second and pull once a second), and a command
// sent to it after that quiet still arrives at once.
func TestIdleEdgeQuiet(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	local := tethertest.Connect(t, f.leaf.ClientURL())
	got, err := local.SubscribeSync("cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Flush(); err != nil {
		t.Fatal(err)
	}
	// Pulls for commands cross to the CLOUD account's JetStream API.
	pulls, err := f.cloud.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT." + contract.CommandsStream + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cloud.Flush(); err != nil {
		t.Fatal(err)
	}
	// The edge's JetStream API requests, read from the embedded server
	// (no request of its own): the buffer and the COMMANDS stream live in
	// the site account, the forwarder's link in the plumbing account.
	apiCalls := func() uint64 {
		t.Helper()
		var total uint64
		for _, name := range []string{contract.EdgeSiteAccount, contract.EdgePlumbingAccount} {
			acc, err := f.leaf.NATS().LookupAccount(name)
			if err != nil {
				t.Fatalf("edge account %s: %v", name, err)
			}
			total += acc.JetStreamUsage().API.Total
		}
		return total
	}

	before := apiCalls()
	<-time.After(idleWindow)
	calls := apiCalls() - before
	n, _, err := pulls.Pending()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle for %s: %d JetStream API requests on the edge, %d command pulls at the hub", idleWindow, calls, n)
	// Expected: one status report (two requests), one wake-up of the
	// forwarder, at most one budget refit.
	if calls > 8 {
		t.Errorf("idle edge made %d JetStream API requests in %s, want at most 8", calls, idleWindow)
	}
	if n > 1 {
		t.Errorf("idle edge pulled for commands %d times in %s, want at most 1 (a pull waits 30s at the hub)", n, idleWindow)
	}

	cloudJS, err := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sent := time.Now()
	if _, err := cloudJS.Publish(ctx, "edges.plant-7.cmd.set", []byte("1")); err != nil {
		t.Fatalf("queue command: %v", err)
	}
	m, err := got.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("command not delivered to the idle edge: %v (edge status %+v)", err, f.leaf.Status().Commands)
	}
	if took := time.Since(sent); took > time.Second {
		t.Errorf("command reached the idle edge after %s, want < 1s: a waiting pull delivers at once", took)
	}
	if m.Subject != "cmd.set" || string(m.Data) != "1" {
		t.Errorf("got %s %q, want cmd.set \"1\"", m.Subject, m.Data)
	}
}

// TestIdleEdgeForwardsAtOnce: a message published at an idle linked edge
// reaches the cloud at once, every time. The forwarder's wake-up sees a
// publish a moment before the buffer stream stores it; it used to find the
// buffer still empty and go back to sleep for its whole idle wait (5 s),
// so about one message in five reached the cloud 5 s late.
func TestIdleEdgeForwardsAtOnce(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	local := tethertest.Connect(t, f.leaf.ClientURL())
	got, err := f.cloud.SubscribeSync("edges.plant-7.telemetry.idle")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cloud.Flush(); err != nil {
		t.Fatal(err)
	}
	var slow []string
	for i := range 20 {
		// Pauses of 0.6 to 1.2 s (not a synchronization): they let the
		// forwarder end its session and go idle, at varying phases. The
		// old forwarder was late for 1 or 2 of 20 messages here (2 of 10
		// in 'tether dev' on a loaded machine).
		<-time.After(600*time.Millisecond + time.Duration(i%3)*300*time.Millisecond)
		// A core publish, as 'tether pub' and most site clients send.
		sent := time.Now()
		if err := local.Publish("telemetry.idle", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := local.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err := got.NextMsg(10 * time.Second)
		// A fast batch's end-of-batch marker travels on the subject too
		// (empty, never stored): not a message of the edge's.
		for err == nil && len(m.Data) == 0 {
			m, err = got.NextMsg(10 * time.Second)
		}
		if err != nil {
			t.Fatalf("message %d not forwarded: %v", i, err)
		}
		took := time.Since(sent)
		if want := fmt.Sprintf("m%d", i); string(m.Data) != want {
			t.Fatalf("got %q (headers %v), want %q", m.Data, m.Header, want)
		}
		if took > time.Second {
			slow = append(slow, fmt.Sprintf("message %d after %s", i, took.Round(time.Millisecond)))
		}
	}
	if len(slow) > 0 {
		t.Errorf("idle edge forwarded late (want < 1s each): %v", slow)
	}
}
