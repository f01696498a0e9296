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
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestAdversarySiteJetStreamBypass: a site client uses the edge's
// JetStream API, whose republished and delivered messages are sent by the
// server rather than by the client, to reach the edge's plumbing: a stream
// republishing onto the forwarder's subjects, a push consumer delivering
// onto them, streams capturing the forwarder's inbox and the control
// subjects. Nothing it sends may reach the cloud outside the buffer, and
// it may capture none of the plumbing's traffic.
func TestAdversarySiteJetStreamBypass(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, err := jetstream.New(site)
	if err != nil {
		t.Fatal(err)
	}
	w := watchCloud(t, f.cloud, "plant-7")
	attacks := []struct {
		name string
		run  func() error
	}{
		{"republish to the forwarder's telemetry subject", func() error {
			if err := siteStream(js, jetstream.StreamConfig{Name: "EVIL_RP", Subjects: []string{"evil.rp.>"},
				RePublish: &jetstream.RePublish{Source: "evil.rp.>", Destination: "tether.up.telemetry.>"}}); err != nil {
				return err
			}
			return sitePublish(js, &nats.Msg{Subject: "evil.rp.x", Data: []byte("spoof-republish")})
		}},
		{"republish to the status report", func() error {
			if err := siteStream(js, jetstream.StreamConfig{Name: "EVIL_ST", Subjects: []string{"evil.st"},
				RePublish: &jetstream.RePublish{Source: "evil.st", Destination: "tether.up.status"}}); err != nil {
				return err
			}
			return sitePublish(js, &nats.Msg{Subject: "evil.st", Data: []byte(`{"edge":"plant-7","spoof-status":true}`)})
		}},
		{"push consumer delivering to the forwarder's subject", func() error {
			if err := siteStream(js, jetstream.StreamConfig{Name: "EVIL_PUSH", Subjects: []string{"evil.push"}}); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := js.CreateOrUpdatePushConsumer(ctx, "EVIL_PUSH", jetstream.ConsumerConfig{
				Durable: "evil", DeliverSubject: "tether.up.telemetry.push", AckPolicy: jetstream.AckNonePolicy,
			}); err != nil {
				return err
			}
			return sitePublish(js, &nats.Msg{Subject: "evil.push", Data: []byte("spoof-push")})
		}},
	}
	attacks = append(attacks, struct {
		name string
		run  func() error
	}{"push consumer delivering the buffer onto cmd.>", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdatePushConsumer(ctx, "TELEMETRY", jetstream.ConsumerConfig{
			Durable: "evilcmd", DeliverSubject: "cmd.fake", AckPolicy: jetstream.AckNonePolicy,
		}); err != nil {
			return err
		}
		return sitePublish(js, &nats.Msg{Subject: "telemetry.fakecmd", Data: []byte("command-attempt")})
	}})
	fakeCmd, _ := site.SubscribeSync("cmd.fake")
	for _, a := range attacks {
		t.Logf("%s: %s", a.name, describe(a.run()))
	}
	if m, err := fakeCmd.NextMsg(time.Second); err == nil {
		t.Errorf("a site client made the edge deliver a command of its own: %q", m.Data)
	}
	// A legitimate message goes through the buffer; a bypass would have
	// overtaken it.
	mustPublish(t, f.edge, "telemetry.sentinel", "sentinel")
	w.until(t, 15*time.Second, "sentinel", "spoof")

	// Capturing the plumbing: streams on the forwarder's inbox and on the
	// operator's control subjects must not exist, or hold nothing after
	// the forwarder exchanged PubAcks with the cloud.
	for _, subj := range []string{"_TETHER_INBOX.>", "$TETHER.CTL.>"} {
		name := "EVIL_CAP_" + strconv.Itoa(len(subj))
		err := siteStream(js, jetstream.StreamConfig{Name: name, Subjects: []string{subj}})
		t.Logf("stream capturing %s: %s", subj, describe(err))
		if err != nil {
			continue
		}
		mustPublish(t, f.edge, "telemetry.after-capture", "after-capture")
		w.until(t, 15*time.Second, "after-capture", "spoof")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, name)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.State.Msgs > 0 {
				err = fmt.Errorf("holds %d messages of the edge's plumbing", info.State.Msgs)
			}
		}
		cancel()
		if err != nil {
			t.Errorf("a site stream captured %s: %v", subj, err)
		}
	}
}

// TestAdversaryHighWaterPoison: a forged message carrying the edge's own
// origin and a huge buffer sequence must not make the forwarder believe
// the cloud already holds what it has not sent: every later message still
// reaches the cloud.
func TestAdversaryHighWaterPoison(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	origin := siteOrigin(t, site)
	err := siteStream(js, jetstream.StreamConfig{Name: "POISON", Subjects: []string{"poison.>"},
		RePublish: &jetstream.RePublish{Source: "poison.>", Destination: "tether.up.telemetry.>"}})
	if err == nil {
		h := nats.Header{}
		h.Set("Tether-Origin", origin)
		h.Set("Tether-Seq", "999999999999")
		h.Set("Nats-Msg-Id", "poison")
		err = sitePublish(js, &nats.Msg{Subject: "poison.x", Header: h, Data: []byte("poison")})
	}
	t.Logf("poisoning the high-water mark: %s", describe(err))
	// Let the forwarder's session end (the buffer idles), so the next
	// messages start a new one that asks the cloud's high-water mark.
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if st := f.leaf.Status(); st.Buffer.BacklogMsgs != 0 {
			return fmt.Errorf("backlog %d", st.Buffer.BacklogMsgs)
		}
		return nil
	})
	const n = 20
	publish(t, f.edge, "after-poison", 0, n)
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, n, 20*time.Second)
	if err := c.verify(map[string]int{"after-poison": n}); err != nil {
		t.Fatal(err)
	}
}

// TestAdversaryLargestMessage: the edge acknowledges only what the whole
// path can carry. A message of the largest size a site may publish
// (contract.SiteMaxMessage) reaches the cloud; anything larger, up to the
// 1 MiB that a plain NATS server would take, is refused at publish time;
// and nothing of it holds up the messages behind it.
func TestAdversaryLargestMessage(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	w := watchCloud(t, f.cloud, "plant-7")
	withHeader := func(size int) *nats.Msg {
		m := &nats.Msg{Subject: "telemetry.big", Header: nats.Header{"App": []string{"x"}}}
		// "NATS/1.0\r\nApp: x\r\n\r\n" is 20 bytes.
		m.Data = []byte(strings.Repeat("L", size-20))
		return m
	}
	data := func(n int) *nats.Msg {
		return &nats.Msg{Subject: "telemetry.big", Data: []byte(strings.Repeat("L", n))}
	}
	const accept, refuse = 1, 2
	cases := []struct {
		name string
		msg  *nats.Msg
		want int
	}{
		{"largest data-only message", data(contract.SiteMaxMessage), accept},
		{"largest message with a header", withHeader(contract.SiteMaxMessage), accept},
		{"one byte more", data(contract.SiteMaxMessage + 1), refuse},
		{"one byte more with a header", withHeader(contract.SiteMaxMessage + 1), refuse},
		{"1 MiB", data(1 << 20), refuse},
	}
	for i, c := range cases {
		size := len(c.msg.Data)
		err := sitePublish(js, c.msg)
		t.Logf("%s (%d bytes of data): %s", c.name, size, describe(err))
		if c.want == accept && err != nil {
			t.Fatalf("%s: refused: %v", c.name, err)
		}
		if c.want == refuse && err == nil {
			t.Errorf("%s: acknowledged, want it refused at publish time (site limit %d bytes)", c.name, contract.SiteMaxMessage)
		}
		after := "after-" + strconv.Itoa(i)
		mustPublish(t, f.edge, "telemetry.after", after)
		deadline := time.Now().Add(20 * time.Second)
		gotBig := false
		for {
			m, err := w.sub.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: the cloud received nothing more (big one received: %v): %v; edge: %+v",
					c.name, gotBig, err, f.leaf.Status().Buffer)
			}
			if len(m.Data) == size {
				gotBig = true
			}
			if string(m.Data) == after {
				break
			}
		}
		if (err == nil) != gotBig {
			t.Errorf("%s: acknowledged %v, reached the cloud %v", c.name, err == nil, gotBig)
		}
	}
}

// TestAdversaryCarelessMessages: headers and subjects a careless client
// may send. The edge refuses at publish time what it could not deliver,
// and whatever it acknowledges reaches the cloud without stopping the
// messages behind it.
func TestAdversaryCarelessMessages(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	w := watchCloud(t, f.cloud, "plant-7")
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name string
		msgs []*nats.Msg
	}{
		{"expected last msg id that holds at the edge only", []*nats.Msg{
			{Subject: "telemetry.c1", Header: hdr("Nats-Msg-Id", "m1"), Data: []byte("c1-a")},
			{Subject: "telemetry.c1", Header: hdr("Nats-Expected-Last-Msg-Id", "m1"), Data: []byte("c1-b")},
		}},
		{"expected last subject sequence that holds at the edge only", []*nats.Msg{
			{Subject: "telemetry.c2", Data: []byte("c2-a")},
			{Subject: "telemetry.c2", Header: hdr("Nats-Expected-Last-Subject-Sequence", "0"), Data: []byte("c2-b")},
		}},
		{"forged forwarder headers", []*nats.Msg{
			{Subject: "telemetry.c3", Header: hdr("Tether-Seq", "999999999", "Tether-Origin", "x", "Tether-Edge", "other"), Data: []byte("c3")},
		}},
	}
	for i, c := range cases {
		var acked []string
		for _, m := range c.msgs {
			err := sitePublish(js, m)
			t.Logf("%s: %s %q: %s", c.name, m.Subject, m.Data, describe(err))
			if err == nil {
				acked = append(acked, string(m.Data))
			}
		}
		after := "after-" + strconv.Itoa(i)
		mustPublish(t, f.edge, "telemetry.after", after)
		seen := map[string]bool{}
		deadline := time.Now().Add(15 * time.Second)
		for !seen[after] {
			m, err := w.sub.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: the cloud stopped receiving (acknowledged %q, saw %v): %v; edge: %+v",
					c.name, acked, seen, err, f.leaf.Status().Buffer)
			}
			seen[string(m.Data)] = true
			if m.Header.Get("Tether-Seq") == "999999999" || m.Header.Get("Tether-Edge") == "other" {
				t.Errorf("%s: the forwarder passed forged headers: %v", c.name, m.Header)
			}
		}
		for _, a := range acked {
			if !seen[a] {
				t.Errorf("%s: acknowledged %q never reached the cloud", c.name, a)
			}
		}
	}
}

// TestAdversaryWildcardSubjects: a publish on a subject that is not
// literal ("telemetry.*", "telemetry.x.>") is stored by the edge's server
// (nats-server offers no refusal at the door: see docs/ARCHITECTURE.md,
// "Limits at the edge's door"). It must not reach the cloud under that
// subject, where a subscriber on edges.*.telemetry.* would take "*" for a
// measurement: it arrives once on the quarantine subject, its subject as
// published in a header, and holds nothing up.
func TestAdversaryWildcardSubjects(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	w := watchCloud(t, f.cloud, "plant-7")
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	sent := map[string]string{} // subject -> payload, of what the edge acknowledged
	for _, subj := range []string{"telemetry.*", "telemetry.x.>"} {
		err := sitePublish(js, &nats.Msg{Subject: subj, Data: []byte("wild:" + subj)})
		t.Logf("publish %s: %s", subj, describe(err))
		if err == nil {
			sent[subj] = "wild:" + subj
		}
	}
	mustPublish(t, f.edge, "telemetry.after", "after")
	got := map[string]string{}
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := w.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("the cloud stopped receiving after the wildcard publishes (quarantined %v): %v", got, err)
		}
		if !strings.HasPrefix(m.Subject, "edges.plant-7.telemetry.") {
			continue // the forwarder's own questions (high-water)
		}
		if string(m.Data) == "after" {
			break
		}
		if m.Subject != "edges.plant-7."+contract.QuarantineSubject {
			t.Errorf("the cloud received %q on %s, want it on %s", m.Data, m.Subject, contract.QuarantineSubject)
			continue
		}
		inv := m.Header.Get(contract.HeaderInvalidSubject)
		if _, dup := got[inv]; dup {
			t.Errorf("%s arrived twice", inv)
		}
		got[inv] = string(m.Data)
	}
	if fmt.Sprint(got) != fmt.Sprint(sent) {
		t.Errorf("quarantined in the cloud %v, want what the edge acknowledged %v", got, sent)
	}
}

// TestAdversaryCommandsCannotBeSkipped: a site client that publishes a
// command with a huge cloud sequence must not make the edge skip the
// cloud's queued commands, before or after a restart.
func TestAdversaryCommandsCannotBeSkipped(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	h := nats.Header{}
	h.Set("Tether-Cloud-Seq", "999999999999")
	err := sitePublish(js, &nats.Msg{Subject: "cmd.fake", Header: h, Data: []byte("fake")})
	t.Logf("site publish on cmd.fake with a forged cloud sequence: %s", describe(err))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.leaf.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f.startLeaf(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	local := tethertest.Connect(t, f.leaf.ClientURL())
	got, err := local.SubscribeSync("cmd.real")
	if err != nil {
		t.Fatal(err)
	}
	local.Flush()
	cloudJS, _ := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
	for i := 0; i < 3; i++ {
		if _, err := cloudJS.Publish(ctx, "edges.plant-7.cmd.real", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		m, err := got.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("queued command %d was not delivered after a forged local command: %v (edge %+v)", i, err, f.leaf.Status().Commands)
		}
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("got command %q, want %d", m.Data, i)
		}
	}
}

// TestAdversarySiteReservedSubjects: a site client cannot publish below
// telemetry._tether. (the edge's own audit records, quarantine and
// end-of-batch marker): each publish is refused with a permissions
// violation and nothing of it reaches the cloud, so no site client can
// forge an audit record or a quarantined message.
func TestAdversarySiteReservedSubjects(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	w := watchCloud(t, f.cloud, "plant-7")
	refused := make(chan error, 8)
	site := tethertest.Connect(t, f.leaf.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		refused <- err
	}))
	for _, subj := range []string{
		contract.LocalAuditPrefix + "echo.echo",
		contract.QuarantineSubject,
		contract.BatchEndSubject,
	} {
		if err := site.Publish(subj, []byte("forged")); err != nil {
			t.Fatal(err)
		}
		if err := site.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-refused:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subj) {
				t.Errorf("publish %s: got %v, want a permissions violation naming it", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("publish %s: no refusal", subj)
		}
	}
	mustPublish(t, f.edge, "telemetry.after", "after")
	for {
		m, err := w.sub.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("the cloud did not receive 'after': %v", err)
		}
		if string(m.Data) == "forged" {
			t.Errorf("a forged message reached the cloud on %s", m.Subject)
		}
		if string(m.Data) == "after" {
			return
		}
	}
}
