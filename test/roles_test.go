package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestCloudRoles: users made by 'tether user add' get exactly their role:
// a reader reads the TELEMETRY stream but cannot send commands or delete
// streams; a commander narrowed to one edge commands that edge only and
// cannot read telemetry.
func TestCloudRoles(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	tethertest.AddEdge(t, store, "plant-8", h)
	// Some telemetry in the cloud stream, published as the admin cloud user.
	admin := tethertest.ConnectCloud(t, store, h)
	ajs, _ := jetstream.NewWithDomain(admin, contract.CloudDomain)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ajs.Publish(ctx, "edges.plant-7.telemetry.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}

	// Every refusal must be the server's permissions violation, not a
	// timeout for another reason.
	var mu sync.Mutex
	var violations []string
	refused := func(subject string) {
		t.Helper()
		tethertest.WaitFor(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			for _, v := range violations {
				if strings.Contains(v, `Permissions Violation for Publish to "`+subject) {
					return nil
				}
			}
			return fmt.Errorf("no permissions violation for %s; got %v", subject, violations)
		})
	}
	connect := func(name, role string, edges ...string) (*nats.Conn, jetstream.JetStream) {
		path, err := store.AddCloudUser(name, role, edges, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		nc := tethertest.Connect(t, h.ClientURL(), append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}))...)
		js, _ := jetstream.NewWithDomain(nc, contract.CloudDomain, jetstream.WithDefaultTimeout(2*time.Second))
		return nc, js
	}

	// reader
	_, rjs := connect("dashboard", contract.RoleReader)
	cons, err := rjs.OrderedConsumer(ctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{NamePrefix: "dashboard", FilterSubjects: []string{"edges.plant-7.telemetry.>"}})
	if err != nil {
		t.Fatalf("reader: ordered consumer on TELEMETRY: %v", err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || string(m.Data()) != "21.5" {
		t.Fatalf("reader: read %v, %v; want 21.5", m, err)
	}
	// A refused request gets no answer: each attempt has its own deadline.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := rjs.Publish(short(), "edges.plant-7.cmd.reboot", nil); err == nil {
		t.Error("reader could queue a command")
	}
	refused("edges.plant-7.cmd.reboot")
	if err := rjs.DeleteStream(short(), contract.TelemetryStream); err == nil {
		t.Error("reader could delete the TELEMETRY stream")
	}
	refused("$JS.API.STREAM.DELETE.TELEMETRY")

	// commander narrowed to plant-7
	_, cjs := connect("ops", contract.RoleCommander, "plant-7")
	if _, err := cjs.Publish(ctx, "edges.plant-7.cmd.reboot", []byte("now")); err != nil {
		t.Fatalf("commander: command to plant-7: %v", err)
	}
	if _, err := cjs.Publish(short(), "edges.plant-8.cmd.reboot", []byte("now")); err == nil {
		t.Error("commander narrowed to plant-7 could command plant-8")
	}
	refused("edges.plant-8.cmd.reboot")
	if _, err := cjs.OrderedConsumer(short(), contract.TelemetryStream, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("commander could read telemetry")
	}
	refused("$JS.API.CONSUMER.CREATE.TELEMETRY")
}
