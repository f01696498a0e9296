package test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestEdgeIsolation: an edge reaches nothing beyond its grant. Whatever a
// local client at edge A publishes, the cloud sees only
// edges.a.telemetry.> and edges.a.status, edge B sees nothing, and the hub's system and
// JetStream APIs do not answer; A's leaf credentials are useless to a
// plain client.
func TestEdgeIsolation(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	la := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "a", h)), nil)
	lb := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "b", h)), nil)
	tethertest.WaitLinked(t, la, 10*time.Second)
	tethertest.WaitLinked(t, lb, 10*time.Second)

	cloud := tethertest.ConnectCloud(t, store, h)
	seenByCloud, _ := cloud.SubscribeSync(">")
	atB := tethertest.Connect(t, lb.ClientURL())
	seenByB, _ := atB.SubscribeSync(">")
	cloud.Flush()
	atB.Flush()

	atA := tethertest.Connect(t, la.ClientURL())
	attempts := []string{
		"edges.b.telemetry.x", "edges.b.cmd.x", "edges.a.cmd.x", "edges.a.telemetry.direct",
		"tether.up.telemetry.spoof", // the forwarder's subject: maps to A's own slice only
		"tether.up.status",          // the status report's subject: likewise (edges.a.status)
		"$SYS.REQ.SERVER.PING", "$SYS.REQ.ACCOUNT.PING.CONNZ", "$JS.hub.API.STREAM.LIST",
		"$JS.API.STREAM.LIST", "$JS.ACK.COMMANDS.cmd_b.1.1.1.1.1.1", "tether.down.next",
		"cmd.x", "svc.x", "_INBOX.x", "foo",
	}
	for _, subj := range attempts {
		if err := atA.Publish(subj, []byte("from-a")); err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
	}
	// A control message proves the path works, and marks the end.
	if err := atA.Publish("telemetry.control", []byte("control")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := seenByCloud.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("control message never reached the cloud: %v", err)
		}
		if string(m.Data) != "from-a" && (strings.HasSuffix(m.Subject, ".status") || m.Subject == "edges.a.hwm" ||
			strings.HasPrefix(m.Subject, "_R_.") || strings.HasPrefix(m.Subject, "$KV.TETHER_LINKS.")) {
			continue // the edges' own status reports, high-water questions and answers; the hubs' link records
		}
		if !strings.HasPrefix(m.Subject, "edges.a.telemetry.") && m.Subject != "edges.a.status" &&
			!strings.HasPrefix(m.Subject, "$JS.") && !strings.HasPrefix(m.Subject, "_INBOX.") {
			t.Errorf("cloud saw %s %q from edge a", m.Subject, m.Data)
		}
		if m.Subject == "edges.a.telemetry.control" {
			break
		}
	}
	if m, err := seenByB.NextMsg(300 * time.Millisecond); err == nil && string(m.Data) == "from-a" {
		t.Errorf("edge b saw %s from edge a", m.Subject)
	}

	// The hub's APIs do not answer an edge ($JS.API.INFO is the edge's own
	// JetStream, which may answer).
	for _, subj := range []string{"$SYS.REQ.SERVER.PING", "$JS.hub.API.INFO", "$JS.hub.API.STREAM.NAMES"} {
		if _, err := atA.Request(subj, nil, 500*time.Millisecond); err == nil {
			t.Errorf("edge a got an answer on %s", subj)
		}
	}

	// A's leaf creds are refused as a plain client.
	b, err := store.Bundle("a")
	if err != nil {
		t.Fatal(err)
	}
	credsFile := t.TempDir() + "/a.creds"
	if err := writeSecret(credsFile, b.Creds); err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(h.ClientURL(), nats.UserCredentials(credsFile), nats.RootCAs(store.CAFile()), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("edge a's leaf credentials work as a plain client")
	}
}

func writeSecret(path, data string) error {
	return securefile.Write(path, []byte(data), 0o600)
}

// TestLocalClientsKeptOffPlumbing: a client at the site (no credentials,
// loopback) cannot bypass the disk buffer by publishing the forwarder's
// subjects, cannot fake the edge's status report, and cannot listen to the
// forwarder's inbox or the operator's control requests; each attempt is
// the server's permissions violation, and nothing reaches the cloud.
func TestLocalClientsKeptOffPlumbing(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "a", h)), nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	cloud := tethertest.ConnectCloud(t, store, h)
	seen, _ := cloud.SubscribeSync("edges.a.>")
	cloud.Flush()

	violations := make(chan string, 16)
	local := tethertest.Connect(t, l.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err.Error()
	}))
	expect := func(what string) {
		t.Helper()
		select {
		case v := <-violations:
			if !strings.Contains(v, "Permissions Violation") || !strings.Contains(v, what) {
				t.Errorf("got %q, want a permissions violation for %s", v, what)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no permissions violation for %s", what)
		}
	}
	// (The cloud command consumer's acks are in the plumbing account, out
	// of the site's reach; $JS.ACK.COMMANDS.> at the site acks the site's
	// own COMMANDS stream.)
	for _, subj := range []string{"tether.up.telemetry.bypass", "tether.up.status", "tether.down.next", "cmd.fake"} {
		if err := local.Publish(subj, []byte("spoof")); err != nil {
			t.Fatal(err)
		}
		expect(`Publish to "` + subj + `"`)
	}
	for _, subj := range []string{"$TETHER.CTL.>", "_TETHER_INBOX.>"} {
		if _, err := local.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		expect(`Subscription to "` + subj + `"`)
	}
	// What the site may do still works: telemetry goes through the buffer.
	if err := local.Publish("telemetry.ok", []byte("fine")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := seen.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("telemetry.ok never reached the cloud: %v", err)
		}
		if string(m.Data) == "spoof" {
			t.Errorf("cloud got a spoofed message on %s", m.Subject)
		}
		if m.Subject == "edges.a.telemetry.ok" {
			break
		}
	}
}
