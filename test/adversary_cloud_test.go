package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
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
	reader := tethertest.Connect(t, h.ClientURL(), nats.UserCredentials(path), nats.RootCAs(store.CAFile()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violation <- err.Error() }))
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
