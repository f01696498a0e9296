package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestEdgeToCloudAndBack proves the data path over both transports: what a
// local client publishes on telemetry.> reaches a cloud subscriber as
// edges.<edge>.telemetry.>, and what the cloud publishes on
// edges.<edge>.cmd.> reaches a local subscriber on cmd.>.
func TestEdgeToCloudAndBack(t *testing.T) {
	for _, transport := range []string{leaf.TransportTLS, leaf.TransportWebsocket} {
		t.Run(transport, func(t *testing.T) {
			store := tethertest.NewStore(t)
			h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
			cfg := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", h))
			cfg.Transport = transport
			l := tethertest.RunLeaf(t, cfg, nil)
			tethertest.WaitLinked(t, l, 10*time.Second)
			if got := l.Link(); !got.Connected || got.Transport != transport {
				t.Fatalf("link = %+v, want connected over %s", got, transport)
			}

			cloud := tethertest.ConnectCloud(t, store, h)
			local := tethertest.Connect(t, l.ClientURL())

			up, err := cloud.SubscribeSync("edges.plant-7.telemetry.>")
			if err != nil {
				t.Fatal(err)
			}
			down, err := local.SubscribeSync("cmd.>")
			if err != nil {
				t.Fatal(err)
			}
			cloud.Flush()
			local.Flush()

			// Interest crosses the link asynchronously: publish until it lands.
			m := publishUntilReceived(t, local, "telemetry.temp", up)
			if m.Subject != "edges.plant-7.telemetry.temp" {
				t.Errorf("cloud got subject %q, want edges.plant-7.telemetry.temp", m.Subject)
			}
			m, err = publishUntilReceivedErr(cloud, "edges.plant-7.cmd.reboot", down)
			if err != nil {
				t.Fatalf("%v; edge status %+v", err, l.Status())
			}
			if m.Subject != "cmd.reboot" {
				t.Errorf("edge got subject %q, want cmd.reboot", m.Subject)
			}
		})
	}
}

func publishUntilReceivedErr(nc *nats.Conn, subj string, sub *nats.Subscription) (*nats.Msg, error) {
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := nc.Publish(subj, []byte(fmt.Sprintf("msg-%d", i))); err != nil {
			return nil, err
		}
		if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			return m, nil
		}
	}
	return nil, fmt.Errorf("nothing published on %s reached %s within 10s", subj, sub.Subject)
}

// publishUntilReceived publishes on subj until sub receives a message, for
// at most 10s, and returns the first message received.
func publishUntilReceived(t *testing.T, nc *nats.Conn, subj string, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := nc.Publish(subj, []byte(fmt.Sprintf("msg-%d", i))); err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
		if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			return m
		}
	}
	t.Fatalf("nothing published on %s reached %s within 10s", subj, sub.Subject)
	return nil
}
