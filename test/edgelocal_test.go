package test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestEdgeLocalServicesSeam: requests for local services arrive in the
// edge's plumbing account (from the hubs, over the link) and reach the
// site account's responders on svc.> and $SRV.>: the seam the services
// capability builds on.
func TestEdgeLocalServicesSeam(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "a", h)), nil)
	site := tethertest.Connect(t, l.ClientURL())
	svc, err := micro.AddService(site, micro.Config{Name: "echo", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "svc.echo", Handler: micro.HandlerFunc(func(r micro.Request) {
			_ = r.Respond(r.Data())
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	site.Flush()
	plumbing := l.InternalConn()
	m, err := plumbing.Request("svc.echo", []byte("hi"), 5*time.Second)
	if err != nil || string(m.Data) != "hi" {
		t.Fatalf("plumbing → site svc.echo: %v %v", m, err)
	}
	inbox := nats.NewInbox()
	replies, _ := plumbing.SubscribeSync(inbox)
	if err := plumbing.PublishRequest("$SRV.PING.echo", inbox, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := replies.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("plumbing → site $SRV.PING.echo: %v", err)
	}
}

// TestSiteConsumesCommandsStream: a site client reads delivered commands
// from the edge's COMMANDS stream with JetStream, as README documents, and
// cannot write to or delete it.
func TestSiteConsumesCommandsStream(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cloudJS, _ := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
	if _, err := cloudJS.Publish(ctx, "edges.plant-7.cmd.reboot", []byte("now")); err != nil {
		t.Fatal(err)
	}
	site := tethertest.Connect(t, f.leaf.ClientURL())
	js, _ := jetstream.New(site)
	var cons jetstream.Consumer
	tethertest.WaitFor(t, 10*time.Second, func() error {
		var err error
		cons, err = js.OrderedConsumer(ctx, "COMMANDS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{contract.LocalCommands}})
		return err
	})
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("site consumer on COMMANDS: %v", err)
	}
	if m.Subject() != "cmd.reboot" || string(m.Data()) != "now" {
		t.Fatalf("got %s %q, want cmd.reboot now", m.Subject(), m.Data())
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if err := js.DeleteStream(short, "COMMANDS"); err == nil {
		t.Error("a site client deleted the COMMANDS stream")
	}
	if _, err := js.Publish(short, "cmd.fake", []byte("x")); err == nil {
		t.Error("a site client stored a command of its own")
	}
}
