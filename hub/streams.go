package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/policy"
)

// TelemetryStream is the CLOUD account's stream holding every edge's
// telemetry as edges.<edge>.telemetry.>.
const TelemetryStream = "TELEMETRY"

// telemetryConfig is the CLOUD telemetry stream's configuration.
func telemetryConfig(c Config) jetstream.StreamConfig {
	replicas := c.TelemetryReplicas
	if replicas == 0 {
		replicas = 1
		// Routes may or may not list this hub itself: two entries already
		// mean a cluster of at least three.
		if n := len(c.Cluster.Routes); c.Cluster.Listen != "" && n >= 2 {
			replicas = 3
		}
	}
	return jetstream.StreamConfig{
		Name:        TelemetryStream,
		Description: "Tether: telemetry of every edge, exactly once and in order per edge",
		Subjects:    []string{"edges.*.telemetry.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  c.TelemetryDedupWindow,
		MaxAge:      c.TelemetryMaxAge,
		// Edges forward a backlog as fast batches (leaf/fastbatch.go):
		// a flow ack every few hundred messages instead of a PubAck each.
		AllowBatchPublish: true,
	}
}

// commandsConfig is the CLOUD stream that queues commands for edges.
func commandsConfig(c Config) jetstream.StreamConfig {
	tc := telemetryConfig(c)
	return jetstream.StreamConfig{
		Name:        policy.CommandsStream,
		Description: "Tether: commands waiting for edges, delivered in order, once, on reconnect",
		Subjects:    []string{"edges.*.cmd.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    tc.Replicas,
		MaxAge:      c.CommandTTL,
		MaxBytes:    c.CommandMaxBytes,
		// A full queue refuses new commands (the cloud publisher sees the
		// error) rather than silently dropping queued ones.
		Discard:    jetstream.DiscardNew,
		Duplicates: 2 * time.Minute,
	}
}

// EnsureCommandConsumer creates (or updates) the durable consumer through
// which edge pulls its queued commands. js must act in the CLOUD account.
func EnsureCommandConsumer(ctx context.Context, js jetstream.JetStream, edge string) error {
	_, err := js.CreateOrUpdateConsumer(ctx, policy.CommandsStream, jetstream.ConsumerConfig{
		Durable:       policy.CommandConsumer(edge),
		Description:   "Tether: commands for edge " + edge,
		FilterSubject: policy.CloudCommandSubject(edge),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short: a delivery lost with a dying link blocks this edge's
		// queue (one in flight) until it is redelivered.
		AckWait: 5 * time.Second,
		// One command in flight per edge keeps them in order.
		MaxAckPending: 1,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("command consumer for edge %s: %w", edge, err)
	}
	return nil
}

// ensureStreams creates or updates the CLOUD streams once JetStream is
// usable, retrying until ctx ends (in a cluster every hub tries; the
// operation is idempotent).
func (s *Server) ensureStreams(ctx context.Context, credsFile string, edges []string) error {
	if err := s.WaitJetStream(ctx); err != nil {
		return err
	}
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.UserCredentials(credsFile), nats.Name("tether-hub-setup"))
	if err != nil {
		return fmt.Errorf("connect as cloud user: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, JetStreamDomain)
	if err != nil {
		return err
	}
	for _, cfg := range []jetstream.StreamConfig{telemetryConfig(s.cfg), commandsConfig(s.cfg)} {
		if err := s.ensureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	for _, e := range edges {
		if err := retry(ctx, func(ctx context.Context) error { return EnsureCommandConsumer(ctx, js, e) }); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	err := retry(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	s.log.Info("cloud stream ready", "stream", cfg.Name, "replicas", cfg.Replicas)
	return nil
}

// retry runs op (each try bounded to 5s) until it succeeds or ctx ends:
// in a forming cluster JetStream answers "no leader" for a while.
func retry(ctx context.Context, op func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// WaitReady waits until the hub's JetStream and CLOUD streams are ready.
func (s *Server) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return s.readyErr
	case <-ctx.Done():
		return fmt.Errorf("hub %s not ready: %w", s.cfg.Name, ctx.Err())
	}
}

// PrepareEdge sets up the cloud side of a new edge on running hubs (its
// command consumer), through cloud, a connection of a CLOUD user.
func PrepareEdge(ctx context.Context, cloud *nats.Conn, edge string) error {
	js, err := jetstream.NewWithDomain(cloud, JetStreamDomain)
	if err != nil {
		return err
	}
	return retry(ctx, func(ctx context.Context) error { return EnsureCommandConsumer(ctx, js, edge) })
}
