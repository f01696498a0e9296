package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/leaf"
)

// The adversarial suite plays a hostile (or careless) site client, a
// hostile edge holding its own leaf creds, and a hostile cloud reader.
// Each test states the promise it checks as a user would notice it: what a
// legitimate client publishes still reaches the cloud once, nothing fake
// does, and every refusal is explicit at the moment of the attempt.

// siteOrigin asks an edge for its status as a site client would, and
// returns its buffer's origin (readable by anyone at the site).
func siteOrigin(t *testing.T, nc *nats.Conn) string {
	t.Helper()
	m, err := nc.Request(contract.LeafStatusSubject, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("edge status as a site client: %v", err)
	}
	var st leaf.Status
	if err := json.Unmarshal(m.Data, &st); err != nil {
		t.Fatalf("edge status %q: %v", m.Data, err)
	}
	return st.Buffer.Origin
}

// cloudWatch collects what the cloud receives live on edges.<edge>.>.
type cloudWatch struct {
	sub *nats.Subscription
}

func watchCloud(t *testing.T, cloud *nats.Conn, edge string) *cloudWatch {
	t.Helper()
	sub, err := cloud.SubscribeSync("edges." + edge + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.Flush(); err != nil {
		t.Fatal(err)
	}
	return &cloudWatch{sub: sub}
}

// until reads what the cloud received until a message with payload want
// arrives (at most d), failing the test if any message with payload bad
// arrived first.
func (w *cloudWatch) until(t *testing.T, d time.Duration, want, bad string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, err := w.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("%q never reached the cloud within %s: %v", want, d, err)
		}
		if strings.Contains(string(m.Data), bad) {
			t.Fatalf("the cloud received a forged message on %s: %q (headers %v)", m.Subject, m.Data, m.Header)
		}
		if string(m.Data) == want {
			return
		}
	}
}

// siteStream tries to create a stream at the edge as a site client; it
// returns the error the edge gave (nil: the attack got through).
func siteStream(js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	// A refused JetStream request gets no answer, only the server's
	// permissions violation: it ends at this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, cfg)
	return err
}

// sitePublish publishes at the edge with JetStream and returns the edge's
// answer.
func sitePublish(js jetstream.JetStream, m *nats.Msg) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := js.PublishMsg(ctx, m)
	return err
}

// mustPublish publishes payload on subj at the edge and fails unless the
// edge acknowledged it.
func mustPublish(t *testing.T, js jetstream.JetStream, subj, payload string) {
	t.Helper()
	if err := sitePublish(js, &nats.Msg{Subject: subj, Data: []byte(payload)}); err != nil {
		t.Fatalf("legitimate publish %s %q refused: %v", subj, payload, err)
	}
}

func describe(err error) string {
	if err == nil {
		return "accepted"
	}
	return fmt.Sprintf("refused (%v)", err)
}

// cloudUserOptions are the documented connect options of a cloud user's
// creds file: its creds and its own inbox prefix (fleet.UserOptions).
func cloudUserOptions(t testing.TB, path string) []nats.Option {
	t.Helper()
	opts, err := fleet.UserOptions(path)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// fleetView is what 'tether status' shows of edge, asked through h with
// the store's system user and the cloud connection.
func fleetView(t *testing.T, store *accounts.Store, h *hub.Server, cloud *nats.Conn, edge string) fleet.EdgeView {
	t.Helper()
	sys, err := fleet.ConnectSystem(store, h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	e, err := store.Edge(edge)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	views, err := fleet.Fleet(ctx, sys, cloud, map[string]string{edge: e.Account.Pub}, []string{edge})
	if err != nil || len(views) != 1 {
		t.Fatalf("Fleet = %v, %v", views, err)
	}
	return views[0]
}
