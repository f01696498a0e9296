package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// groupPolicy is a fleet of three edges, berlin holding the edges
// labelled site: berlin, and a dashboard role reading group berlin.
func groupPolicy(berlin ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\nedges:\n")
	for _, e := range []string{"ber-1", "ber-2", "mun-1"} {
		site := "munich"
		for _, x := range berlin {
			if x == e {
				site = "berlin"
			}
		}
		fmt.Fprintf(&b, "  %s: {labels: {site: %s}}\n", e, site)
	}
	b.WriteString("groups:\n  berlin: {match_labels: {site: berlin}}\nroles:\n  dash: {telemetry: [\"group:berlin\"]}\n")
	return b.String()
}

// TestPolicyGroupTelemetry: a role granted a group's telemetry reads its
// members' telemetry, stored (the group's stream, through its own
// consumers) and live (the group's live subjects), and nothing of other
// edges; when an edge changes groups, an apply changes what the group's
// readers get without re-signing any account, reconnecting anyone or
// reissuing creds: the edge that left is purged from the group's stream
// at once, the one that joined comes in from then on, and no member's
// message is taken twice; when no grant reads the group any more its
// stream is gone.
func TestPolicyGroupTelemetry(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	admin := tethertest.ConnectCloud(t, store, h)
	ajs, err := jetstream.NewWithDomain(admin, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := 0
	published := map[string]int{} // edge -> messages stored in TELEMETRY
	publish := func(edge string) {
		t.Helper()
		n++
		// As an edge's forwarder does: a message id per message.
		if _, err := ajs.Publish(ctx, contract.CloudTelemetrySubject(edge)[:len(contract.CloudTelemetrySubject(edge))-1]+"temp",
			[]byte(fmt.Sprint(n)), jetstream.WithMsgID(fmt.Sprintf("%s-%d", edge, n))); err != nil {
			t.Fatal(err)
		}
		published[edge]++
	}
	for _, e := range []string{"ber-1", "ber-2", "mun-1"} {
		publish(e) // history before any policy
	}

	applyPolicy(t, store, h, groupPolicy("ber-1", "ber-2"))
	path, err := store.AddCloudUser("dash-u", "dash", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	dash := connectPolicyClient(t, h.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()))...)
	djs, err := jetstream.NewWithDomain(dash.nc, contract.CloudDomain, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	live, err := dash.nc.SubscribeSync(contract.GroupLiveSubject("berlin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dash.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// nextLive returns the edge of the next live message.
	nextLive := func() string {
		t.Helper()
		m, err := live.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("live telemetry of group berlin: %v", err)
		}
		return strings.Split(strings.TrimPrefix(m.Subject, contract.GroupLivePrefix+"berlin."), ".")[1]
	}
	// stored returns the messages per edge in the group's stream, read
	// through one of the reader's own consumers.
	stored := func() map[string]int {
		t.Helper()
		cons, err := cloudjs.CreateOwnedConsumer(ctx, djs, contract.GroupStream("berlin"), "dash-u",
			jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute})
		if err != nil {
			t.Fatalf("consumer on %s: %v", contract.GroupStream("berlin"), err)
		}
		info := cons.CachedInfo()
		defer func() { _ = djs.DeleteConsumer(ctx, contract.GroupStream("berlin"), info.Name) }()
		got := map[string]int{}
		if info.NumPending == 0 {
			return got
		}
		batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got[strings.Split(m.Subject(), ".")[1]]++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("stored telemetry of group berlin: %v", err)
		}
		return got
	}
	// waitStored waits until the group's stream holds want.
	waitStored := func(want map[string]int) {
		t.Helper()
		tethertest.WaitFor(t, 10*time.Second, func() error {
			if got := stored(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("group berlin's stream holds %v, want %v", got, want)
			}
			return nil
		})
	}

	// v1: ber-1 and ber-2 are in berlin, with their history.
	waitStored(map[string]int{"ber-1": 1, "ber-2": 1})
	publish("mun-1")
	publish("ber-2")
	if e := nextLive(); e != "ber-2" {
		t.Fatalf("live: got %s's telemetry first, want ber-2's (mun-1 is not in berlin)", e)
	}
	waitStored(map[string]int{"ber-1": 1, "ber-2": 2})
	// Nothing outside the group.
	if _, err := dash.nc.SubscribeSync(contract.CloudTelemetrySubject("mun-1")); err != nil {
		t.Fatal(err)
	}
	dash.refused(t, "Subscription", contract.CloudTelemetrySubject("mun-1"))
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	if _, err := cloudjs.CreateOwnedConsumer(short, djs, contract.TelemetryStream, "dash-u", jetstream.ConsumerConfig{}); err == nil {
		t.Error("the group reader made a consumer on TELEMETRY")
	}
	cancelShort()
	dash.refused(t, "Publish", "$JS.API.CONSUMER.CREATE.TELEMETRY.")

	// v2: ber-2 moves to munich, mun-1 to berlin. The grant's words do not
	// change, so no account JWT does.
	reconnects := dash.nc.Stats().Reconnects
	plan := applyPolicy(t, store, h, groupPolicy("ber-1", "mun-1"))
	if len(plan.Changed) != 0 {
		t.Errorf("moving edges between groups re-signed %v, want no account", plan.Changed)
	}
	waitStored(map[string]int{"ber-1": 1}) // ber-2 purged; mun-1 from now on
	publish("ber-2")
	publish("mun-1")
	publish("ber-1")
	for _, want := range []string{"mun-1", "ber-1"} {
		if e := nextLive(); e != want {
			t.Fatalf("live after the move: got %s's telemetry, want %s's (ber-2 left berlin)", e, want)
		}
	}
	waitStored(map[string]int{"ber-1": 2, "mun-1": 1})
	if r := dash.nc.Stats().Reconnects; r != reconnects {
		t.Errorf("the reader reconnected %d times during the move, want none", r-reconnects)
	}

	// v3: no grant reads berlin any more: its stream is deleted.
	applyPolicy(t, store, h, strings.Replace(groupPolicy("ber-1"), `  dash: {telemetry: ["group:berlin"]}`, `  dash: {telemetry: [ber-1]}`, 1))
	if _, err := ajs.Stream(ctx, contract.GroupStream("berlin")); err != jetstream.ErrStreamNotFound {
		t.Fatalf("stream %s after its last grant went: %v, want not found", contract.GroupStream("berlin"), err)
	}
}
