package test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
// labelled site: berlin, each exposing echo, a dashboard role reading
// group berlin, an ops role sending reboot to its edges and a quality role
// calling their echo service.
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
		fmt.Fprintf(&b, "  %s: {labels: {site: %s}, expose: [echo]}\n", e, site)
	}
	b.WriteString("groups:\n  berlin: {match_labels: {site: berlin}}\nroles:\n  dash: {telemetry: [\"group:berlin\"]}\n")
	b.WriteString("  ops: {commands: [{to: [\"group:berlin\"], subjects: [reboot]}]}\n")
	b.WriteString("  quality: {services: [{service: echo, on: [\"group:berlin\"]}]}\n")
	return b.String()
}

// TestPolicyGroups: a role granted a group's telemetry reads its members'
// telemetry, stored (the group's stream, through its own consumers) and
// live (the group's live subjects), and nothing of other edges; a role
// granted commands to a group sends them to its members through the group
// (groups.<g>.edges.<e>.cmd.…) and reaches the edge's site clients, and a
// command for an edge outside the group is refused at once; a role
// granted a service on a group calls it on members, and an edge outside
// the group refuses the call at once (its gateway). When an edge
// changes groups, an apply changes both without re-signing any account,
// reconnecting anyone or reissuing creds: the edge that left is purged
// from the group's stream at once and refused commands, the one that
// joined comes in from then on, and no member's message is taken twice;
// when no grant names the group any more its streams are gone.
func TestPolicyGroups(t *testing.T) {
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
	// mun-1 is a real edge: it joins berlin in v2 and gets its command.
	// It links after v1, which re-signs CLOUD: nats-server forgets the
	// replies of requests in flight into an account whose JWT changes,
	// which would hold its first pull of commands for up to 33 s
	// (docs/ARCHITECTURE.md); v2 does not change CLOUD.
	mun := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "mun-1", h)), nil)
	tethertest.WaitLinked(t, mun, 10*time.Second)
	site := tethertest.Connect(t, mun.ClientURL())
	cmds, err := site.SubscribeSync("cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := site.Subscribe("svc.echo.echo", func(m *nats.Msg) { _ = m.Respond([]byte("echo from mun-1")) }); err != nil {
		t.Fatal(err)
	}
	if err := site.Flush(); err != nil {
		t.Fatal(err)
	}
	user := func(name, role string) (*policyClient, jetstream.JetStream) {
		t.Helper()
		path, err := store.AddCloudUser(name, role, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		c := connectPolicyClient(t, h.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()))...)
		js, err := jetstream.NewWithDomain(c.nc, contract.CloudDomain, jetstream.WithDefaultTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c, js
	}
	dash, djs := user("dash-u", "dash")
	ops, ojs := user("ops-u", "ops")
	quality, _ := user("quality-u", "quality")
	// call calls mun-1's echo as quality and returns the answer's error
	// code (0: answered).
	call := func() int {
		t.Helper()
		start := time.Now()
		m, err := quality.nc.Request(contract.CloudServiceSubject("mun-1", "echo", "echo"), []byte("x"), 5*time.Second)
		if err != nil {
			t.Fatalf("call mun-1's echo: %v", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("call mun-1's echo answered after %s, want at once", took)
		}
		code, _ := strconv.Atoi(m.Header.Get(contract.HeaderServiceErrorCode))
		return code
	}
	// command sends reboot to edge through group berlin.
	command := func(edge string) error {
		_, err := ojs.Publish(ctx, contract.GroupCommandSubject("berlin", edge, "reboot"), []byte("now"))
		return err
	}
	queued := func(edge string) uint64 {
		t.Helper()
		s, err := ajs.Stream(ctx, contract.CommandsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(contract.CloudCommandSubject(edge)))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
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
		for {
			m, err := live.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("live telemetry of group berlin: %v", err)
			}
			// mun-1's own audit records (of the calls below) count for nothing here.
			if strings.HasSuffix(m.Subject, ".telemetry.temp") {
				return strings.Split(strings.TrimPrefix(m.Subject, contract.GroupPrefix+"berlin."), ".")[1]
			}
		}
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
			if strings.HasSuffix(m.Subject(), ".telemetry.temp") {
				got[strings.Split(m.Subject(), ".")[1]]++
			}
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

	// Commands through the group reach its members' queues, and nothing
	// else does.
	if err := command("ber-1"); err != nil {
		t.Fatalf("reboot ber-1 through berlin: %v", err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if n := queued("ber-1"); n != 1 {
			return fmt.Errorf("COMMANDS holds %d command(s) for ber-1, want 1", n)
		}
		return nil
	})
	if err := command("mun-1"); !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("reboot mun-1 (not in berlin) through berlin: %v, want no stream", err)
	}
	short, cancelShort = context.WithTimeout(ctx, 2*time.Second)
	if _, err := ojs.Publish(short, contract.CloudCommandSubject("mun-1")[:len(contract.CloudCommandSubject("mun-1"))-1]+"reboot", nil); err == nil {
		t.Error("the group commander sent a command on mun-1's own subject")
	}
	cancelShort()
	ops.refused(t, "Publish", "edges.mun-1.cmd.reboot")
	if _, err := cmds.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatal("mun-1 got a command while outside berlin")
	}
	tethertest.WaitFor(t, 10*time.Second, func() error { // mun-1's gateway has its configuration
		if c := call(); c != contract.CodeDenied {
			return fmt.Errorf("quality calling mun-1 (not in berlin): code %d, want %d", c, contract.CodeDenied)
		}
		return nil
	})

	// v2: ber-2 moves to munich, mun-1 to berlin. The grant's words do not
	// change, so no account JWT does.
	reconnects := dash.nc.Stats().Reconnects + ops.nc.Stats().Reconnects + quality.nc.Stats().Reconnects
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
	if err := command("mun-1"); err != nil {
		t.Fatalf("reboot mun-1 through berlin after it joined: %v", err)
	}
	if m, err := cmds.NextMsg(10 * time.Second); err != nil || m.Subject != "cmd.reboot" {
		t.Fatalf("mun-1's site: %v %v, want cmd.reboot (COMMANDS holds %d for mun-1; edge %+v)", m, err, queued("mun-1"), mun.Status().Commands)
	}
	if err := command("ber-2"); err == nil {
		t.Fatal("reboot ber-2 through berlin after it left was taken")
	}
	if c := call(); c != 0 {
		t.Fatalf("quality calling mun-1 after it joined berlin: code %d, want an answer", c)
	}
	if r := dash.nc.Stats().Reconnects + ops.nc.Stats().Reconnects + quality.nc.Stats().Reconnects; r != reconnects {
		t.Errorf("the reader, the commander and the caller reconnected %d times during the move, want none", r-reconnects)
	}

	// v3: no grant names berlin any more: its streams are deleted, and
	// COMMANDS no longer sources the command stream.
	v3 := strings.Replace(groupPolicy("ber-1"), `  dash: {telemetry: ["group:berlin"]}`, `  dash: {telemetry: [ber-1]}`, 1)
	applyPolicy(t, store, h, strings.Replace(v3, `to: ["group:berlin"]`, `to: [ber-1]`, 1))
	for _, s := range []string{contract.GroupStream("berlin"), contract.GroupCommandStream("berlin")} {
		if _, err := ajs.Stream(ctx, s); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s after its last grant went: %v, want not found", s, err)
		}
	}
	s, err := ajs.Stream(ctx, contract.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	if src := s.CachedInfo().Config.Sources; len(src) != 0 {
		t.Errorf("COMMANDS still sources %+v", src[0])
	}
}

// TestPolicyGroupsStoreOnlyCluster: a policy with group grants applied to
// the store only reaches a 3-hub cluster that starts from the store: every
// hub makes the group streams (replicated like TELEMETRY and COMMANDS) at
// the same time, and they work: a member's telemetry reaches its group's
// stream and live subjects, and a command sent through the group reaches
// the member's queue in COMMANDS.
func TestPolicyGroupsStoreOnlyCluster(t *testing.T) {
	store := tethertest.NewStore(t)
	plan, err := store.PlanPolicy("policy.yaml", []byte(groupPolicy("ber-1")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.ApplyPolicy(plan, 0); err != nil {
		t.Fatal(err)
	}
	hubs := tethertest.RunCluster(t, store, 3)
	admin := tethertest.ConnectCloud(t, store, hubs[2])
	js, err := jetstream.NewWithDomain(admin, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The hubs retry for up to a minute while the cluster's JetStream forms
	// (slow on a loaded machine with -race).
	tethertest.WaitFor(t, 90*time.Second, func() error {
		for _, name := range []string{contract.GroupStream("berlin"), contract.GroupCommandStream("berlin")} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s: %v", name, err)
			}
			if r := s.CachedInfo().Config.Replicas; r != 3 {
				return fmt.Errorf("stream %s has %d replicas, want 3", name, r)
			}
		}
		c, err := js.Stream(ctx, contract.CommandsStream)
		if err != nil {
			return err
		}
		if src := c.CachedInfo().Config.Sources; len(src) != 1 || src[0].Name != contract.GroupCommandStream("berlin") {
			return fmt.Errorf("COMMANDS sources %v, want %s", src, contract.GroupCommandStream("berlin"))
		}
		return nil
	})
	live, err := admin.SubscribeSync(contract.GroupLiveSubject("berlin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "edges.mun-1.telemetry.temp", []byte("1"), jetstream.WithMsgID("mun-1-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "edges.ber-1.telemetry.temp", []byte("2"), jetstream.WithMsgID("ber-1-1")); err != nil {
		t.Fatal(err)
	}
	m, err := live.NextMsg(10 * time.Second)
	if err != nil || m.Subject != contract.GroupPrefix+"berlin.edges.ber-1.telemetry.temp" {
		t.Fatalf("live telemetry of group berlin: %v %v, want ber-1's only", m, err)
	}
	if _, err := js.Publish(ctx, contract.GroupCommandSubject("berlin", "ber-1", "reboot"), []byte("now")); err != nil {
		t.Fatalf("command through group berlin: %v", err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		s, err := js.Stream(ctx, contract.CommandsStream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter("edges.ber-1.cmd.reboot"))
		if err != nil {
			return err
		}
		if n := info.State.Subjects["edges.ber-1.cmd.reboot"]; n != 1 {
			return fmt.Errorf("COMMANDS holds %d reboot(s) for ber-1, want 1", n)
		}
		return nil
	})
}
