package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TelemetryStream is the CLOUD account's stream holding every edge's
// telemetry as edges.<edge>.telemetry.>.
const TelemetryStream = "TELEMETRY"

// telemetryConfig is the CLOUD telemetry stream's configuration.
func telemetryConfig(c Config) jetstream.StreamConfig {
	replicas := c.TelemetryReplicas
	if replicas == 0 {
		replicas = 1
		if n := len(c.Cluster.Routes); c.Cluster.Listen != "" && n >= 3 {
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
	}
}

// ensureStreams creates or updates the CLOUD streams once JetStream is
// usable, retrying until ctx ends (in a cluster every hub tries; the
// operation is idempotent).
func (s *Server) ensureStreams(ctx context.Context, credsFile string) error {
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
	cfg := telemetryConfig(s.cfg)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil {
			s.log.Info("cloud stream ready", "stream", cfg.Name, "replicas", cfg.Replicas, "dedup_window", cfg.Duplicates.String())
			return nil
		}
		if errors.Is(ctx.Err(), context.Canceled) || ctx.Err() != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		s.log.Debug("stream not ready yet", "stream", cfg.Name, "err", err)
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
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
