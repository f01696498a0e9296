package test

import (
	"context"
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
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestAdversaryCloudReaderCannotDeleteConsumers: a reader reads the
// TELEMETRY stream through its own consumers but cannot delete another
// application's consumer.
func TestAdversaryCloudReaderCannotDeleteConsumers(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	admin := tethertest.ConnectCloud(t, store, h)
	ajs, _ := jetstream.NewWithDomain(admin, contract.CloudDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ajs.CreateOrUpdateConsumer(ctx, contract.TelemetryStream, jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	path, err := store.AddCloudUser("dashboard", contract.RoleReader, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	violation := make(chan string, 4)
	reader := tethertest.Connect(t, h.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violation <- err.Error() }))...)
	rjs, _ := jetstream.NewWithDomain(reader, contract.CloudDomain, jetstream.WithDefaultTimeout(2*time.Second))
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	err = rjs.DeleteConsumer(short, contract.TelemetryStream, "billing")
	t.Logf("reader deletes the billing consumer: %s", describe(err))
	if _, err := ajs.Consumer(ctx, contract.TelemetryStream, "billing"); err != nil {
		t.Fatalf("another application's consumer is gone after a reader deleted it: %v", err)
	}
	select {
	case v := <-violation:
		if !strings.Contains(v, "Permissions Violation") {
			t.Errorf("got %q, want a permissions violation", v)
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation for the reader's consumer delete")
	}
}

// cloudClient is a cloud user's connection, made the documented way: its
// creds and its own inbox prefix (fleet.UserOptions). errs collects the
// server's asynchronous errors (permissions violations).
type cloudClient struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan string
}

func connectCloudUser(t *testing.T, store *accounts.Store, h *hub.Server, name, role string) *cloudClient {
	t.Helper()
	path, err := store.AddCloudUser(name, role, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return connectCreds(t, store, h, path)
}

func connectCreds(t *testing.T, store *accounts.Store, h *hub.Server, path string) *cloudClient {
	t.Helper()
	opts, err := fleet.UserOptions(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &cloudClient{errs: make(chan string, 64)}
	c.nc = tethertest.Connect(t, h.ClientURL(), append(opts, nats.RootCAs(store.CAFile()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err.Error():
			default:
			}
		}))...)
	c.js, _ = jetstream.NewWithDomain(c.nc, contract.CloudDomain, jetstream.WithDefaultTimeout(2*time.Second))
	return c
}

// violation waits for the server's permissions violation naming subject.
func (c *cloudClient) violation(t *testing.T, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-c.errs:
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, `"`+subject+`"`) {
				return
			}
		case <-timeout:
			t.Errorf("no permissions violation for %s", subject)
			return
		}
	}
}

// TestAdversaryCloudReaderCannotReceiveOthersReplies: a reader cannot
// subscribe to the inboxes of other CLOUD users (every inbox, or one
// user's), so it receives none of their replies: a reader's JetStream
// answers, a commander's command acks, an admin's request-reply. Each user
// still gets its own replies on its own inbox prefix.
func TestAdversaryCloudReaderCannotReceiveOthersReplies(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	spy := connectCloudUser(t, store, h, "spy", contract.RoleReader)
	leaked := make(chan *nats.Msg, 64)
	for _, subj := range []string{"_INBOX.>", "_INBOX.*.>", contract.CloudInbox("dashboard"), contract.CloudInbox("ops"), contract.CloudInbox("cloud")} {
		if _, err := spy.nc.ChanSubscribe(subj, leaked); err != nil {
			t.Fatal(err)
		}
		spy.violation(t, subj)
	}

	dashboard := connectCloudUser(t, store, h, "dashboard", contract.RoleReader)
	if _, err := dashboard.js.Stream(ctx, contract.TelemetryStream); err != nil {
		t.Fatalf("reader: stream info on its own inbox: %v", err)
	}
	ops := connectCloudUser(t, store, h, "ops", contract.RoleCommander)
	if _, err := ops.js.Publish(ctx, "edges.plant-7.cmd.reboot", []byte("now")); err != nil {
		t.Fatalf("commander: command ack on its own inbox: %v", err)
	}
	admin := connectCreds(t, store, h, store.CloudCredsFile())
	echo := tethertest.ConnectCloud(t, store, h)
	if _, err := echo.Subscribe("app.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := echo.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := admin.nc.Request("app.echo", []byte("secret"), 5*time.Second); err != nil || string(m.Data) != "secret" {
		t.Fatalf("admin: request-reply: %v, %v", m, err)
	}
	// The spy's own answer comes after any copy of the others' replies
	// the hub would have sent it (one connection, in order).
	if _, err := spy.js.Stream(ctx, contract.TelemetryStream); err != nil {
		t.Fatalf("spy: stream info on its own inbox: %v", err)
	}
	if n := len(leaked); n > 0 {
		m := <-leaked
		t.Fatalf("the reader received %d replies meant for other users, e.g. on %s: %.80q", n, m.Subject, m.Data)
	}
}

// TestAdversaryCloudReaderCannotTouchOthersConsumers: a reader cannot
// update, read, pull from, ack on or delete another application's
// consumer on TELEMETRY (an admin's durable, another reader's own), by
// the consumer-create subject, the legacy durable and ephemeral ones or
// the consumer's subjects; it creates, reads and deletes its own.
func TestAdversaryCloudReaderCannotTouchOthersConsumers(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := tethertest.ConnectCloud(t, store, h)
	ajs, _ := jetstream.NewWithDomain(admin, contract.CloudDomain)
	if _, err := ajs.Publish(ctx, "edges.plant-7.telemetry.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	billingCfg := jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: "edges.*.telemetry.>", MaxAckPending: 100}
	if _, err := ajs.CreateOrUpdateConsumer(ctx, contract.TelemetryStream, billingCfg); err != nil {
		t.Fatal(err)
	}
	dashboard := connectCloudUser(t, store, h, "dashboard", contract.RoleReader)
	own, err := cloudjs.CreateOwnedConsumer(ctx, dashboard.js, contract.TelemetryStream, "dashboard",
		jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "edges.plant-7.telemetry.>", InactiveThreshold: 5 * time.Minute})
	if err != nil {
		t.Fatalf("reader: its own consumer: %v", err)
	}
	victim := own.CachedInfo().Name

	spy := connectCloudUser(t, store, h, "spy", contract.RoleReader)
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	// Requests go to the domain's API; the hub maps them to $JS.API. and
	// checks (and names) that subject.
	js, api := "$JS."+contract.CloudDomain+".API.", "$JS.API."
	hijack := billingCfg
	hijack.FilterSubject, hijack.MaxAckPending = "edges.nosuch.telemetry.>", 1
	_, err = spy.js.CreateOrUpdateConsumer(short(), contract.TelemetryStream, hijack)
	t.Logf("reader updates billing's filter: %s", describe(err))
	spy.violation(t, api+"CONSUMER.CREATE.TELEMETRY.billing.edges.nosuch.telemetry.>")
	_, err = spy.js.CreateOrUpdateConsumer(short(), contract.TelemetryStream, jetstream.ConsumerConfig{Durable: victim, AckPolicy: jetstream.AckExplicitPolicy})
	t.Logf("reader takes over another reader's consumer %s: %s", victim, describe(err))
	spy.violation(t, api+"CONSUMER.CREATE.TELEMETRY."+victim)
	// The legacy forms: DURABLE.CREATE names it in the subject, the
	// ephemeral create in the payload.
	for _, subj := range []string{js + "CONSUMER.DURABLE.CREATE.TELEMETRY.billing", js + "CONSUMER.CREATE.TELEMETRY"} {
		req := fmt.Sprintf(`{"stream_name":"TELEMETRY","config":{"name":"billing","durable_name":%q,"ack_policy":"explicit","filter_subject":"edges.nosuch.telemetry.>","max_ack_pending":1}}`,
			map[bool]string{true: "billing"}[strings.Contains(subj, "DURABLE")])
		_, err := spy.nc.Request(subj, []byte(req), time.Second)
		t.Logf("reader updates billing through %s: %s", subj, describe(err))
		spy.violation(t, strings.Replace(subj, js, api, 1))
	}
	for _, name := range []string{"billing", victim} {
		_, err = spy.js.Consumer(short(), contract.TelemetryStream, name)
		t.Logf("reader reads consumer %s's info: %s", name, describe(err))
		spy.violation(t, api+"CONSUMER.INFO.TELEMETRY."+name)
		err = spy.js.DeleteConsumer(short(), contract.TelemetryStream, name)
		t.Logf("reader deletes consumer %s: %s", name, describe(err))
		spy.violation(t, api+"CONSUMER.DELETE.TELEMETRY."+name)
		next := js + "CONSUMER.MSG.NEXT.TELEMETRY." + name
		_, err = spy.nc.Request(next, []byte(`{"batch":1,"expires":500000000}`), time.Second)
		t.Logf("reader pulls from consumer %s: %s", name, describe(err))
		spy.violation(t, strings.Replace(next, js, api, 1))
		ack := "$JS.ACK.TELEMETRY." + name + ".1.1.1.0.0"
		if err := spy.nc.Publish(ack, []byte("+TERM")); err != nil {
			t.Fatal(err)
		}
		spy.violation(t, ack)
	}

	// What the others see: their consumers unchanged, their message
	// neither taken nor acked.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		js     jetstream.JetStream
		name   string
		filter string
	}{{ajs, "billing", billingCfg.FilterSubject}, {dashboard.js, victim, "edges.plant-7.telemetry.>"}} {
		cons, err := c.js.Consumer(ctx, contract.TelemetryStream, c.name)
		if err != nil {
			t.Fatalf("consumer %s after the reader's attempts: %v", c.name, err)
		}
		info := cons.CachedInfo()
		if info.Config.FilterSubject != c.filter || info.NumPending != 1 || info.NumAckPending != 0 {
			t.Errorf("consumer %s: filter %q, %d pending, %d unacked; want %q, 1, 0 (untouched)",
				c.name, info.Config.FilterSubject, info.NumPending, info.NumAckPending, c.filter)
		}
		if c.name == "billing" && info.Config.MaxAckPending != billingCfg.MaxAckPending {
			t.Errorf("billing's max ack pending is %d, want %d", info.Config.MaxAckPending, billingCfg.MaxAckPending)
		}
	}

	// Its own consumers: created, read, deleted (ephemeral and durable).
	mine, err := cloudjs.CreateOwnedConsumer(ctx, spy.js, contract.TelemetryStream, "spy",
		jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "edges.plant-7.telemetry.>", InactiveThreshold: time.Minute})
	if err != nil {
		t.Fatalf("reader: its own consumer: %v", err)
	}
	m, err := mine.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || string(m.Data()) != "21.5" {
		t.Fatalf("reader: read %v, %v from its own consumer; want 21.5", m, err)
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatalf("reader: ack on its own consumer: %v", err)
	}
	if _, err := spy.js.CreateOrUpdateConsumer(ctx, contract.TelemetryStream, jetstream.ConsumerConfig{Durable: "spy_8", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatalf("reader: its own durable consumer spy_8: %v", err)
	}
	for _, name := range []string{mine.CachedInfo().Name, "spy_8"} {
		if err := spy.js.DeleteConsumer(ctx, contract.TelemetryStream, name); err != nil {
			t.Errorf("reader: delete its own consumer %s: %v", name, err)
		}
	}
	// The documented pattern for an ordered consumer: NamePrefix = user.
	oc, err := spy.js.OrderedConsumer(ctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{NamePrefix: "spy"})
	if err != nil {
		t.Fatalf("reader: ordered consumer with NamePrefix spy: %v", err)
	}
	if m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || string(m.Data()) != "21.5" {
		t.Fatalf("reader: read %v, %v from its ordered consumer; want 21.5", m, err)
	}
}

// TestAdversaryCloudReaderCLI: the normal paths of a reader through the
// tether commands, which set the user's inbox prefix themselves: 'tether
// sub' receives live telemetry, and two 'tether audit' runs at once read
// the stored audit trail, each through a consumer of its own.
func TestAdversaryCloudReaderCLI(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	path, err := store.AddCloudUser("dashboard", contract.RoleReader, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	conn := []string{"--server", h.ClientURL(), "--creds", path, "--tlsca", store.CAFile()}
	admin := tethertest.ConnectCloud(t, store, h)
	ajs, _ := jetstream.NewWithDomain(admin, contract.CloudDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := `{"edge":"plant-7","service":"echo","endpoint":"echo","status":"ok","caller":{"kind":"user","name":"ops"}}`
	if _, err := ajs.Publish(ctx, "edges.plant-7.telemetry."+contract.AuditToken+".echo.echo", []byte(rec)); err != nil {
		t.Fatal(err)
	}

	type result struct {
		out, errOut string
		code        int
	}
	audits := make(chan result, 2)
	for range 2 {
		go func() {
			out, errOut, code := runBinaryStatus(t, append([]string{"audit", "--json"}, conn...)...)
			audits <- result{out, errOut, code}
		}()
	}
	for range 2 {
		r := <-audits
		if r.code != 0 || !strings.Contains(r.out, `"service":"echo"`) {
			t.Errorf("reader: tether audit: exit %d, %q %q; want the echo record", r.code, r.out, r.errOut)
		}
	}

	subDone := make(chan result, 1)
	go func() {
		out, errOut, code := runBinaryStatus(t, append([]string{"sub", "--count", "1", "edges.plant-7.telemetry.temp"}, conn...)...)
		subDone <- result{out, errOut, code}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-subDone:
			if r.code != 0 || r.out != "[edges.plant-7.telemetry.temp] 21.5\n" {
				t.Errorf("reader: tether sub: exit %d, %q %q", r.code, r.out, r.errOut)
			}
			return
		case <-tick.C:
			if err := admin.Publish("edges.plant-7.telemetry.temp", []byte("21.5")); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("reader: tether sub received nothing in 30s")
		}
	}
}
