package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

// TelemetryStream is the CLOUD account's stream holding every edge's
// telemetry as edges.<edge>.telemetry.>.
const TelemetryStream = "TELEMETRY"

// EdgeStatusStream is the CLOUD account's stream holding the last status
// report of every edge as edges.<edge>.status.
const EdgeStatusStream = "EDGE_STATUS"

// edgeStatusMaxAge is how long an edge's last report is kept once it stops
// reporting: long enough to show an edge that has been offline for days
// with its last known backlog.
const edgeStatusMaxAge = 7 * 24 * time.Hour

// edgeStatusConfig keeps only the last report per edge (one message per
// subject), so its size grows with the fleet, not with time: about 600 B
// per edge.
func edgeStatusConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              EdgeStatusStream,
		Description:       "Tether: the last status report of every edge (backlog, last error, stalled)",
		Subjects:          []string{"edges.*.status"},
		Storage:           jetstream.FileStorage,
		Replicas:          telemetryConfig(c).Replicas,
		MaxMsgsPerSubject: 1,
		MaxAge:            edgeStatusMaxAge,
		// Reports are small; a bigger message is not a report.
		MaxMsgSize:  16 << 10,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
}

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

// commandsDedupWindow is nats-server's shortest duplicate window.
const commandsDedupWindow = 100 * time.Millisecond

// commandsConfig is the CLOUD stream that queues commands for edges.
func commandsConfig(c Config) jetstream.StreamConfig {
	tc := telemetryConfig(c)
	return jetstream.StreamConfig{
		Name:        contract.CommandsStream,
		Description: "Tether: commands waiting for edges, delivered in order, once, on reconnect",
		Subjects:    []string{"edges.*.cmd.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    tc.Replicas,
		MaxAge:      c.CommandTTL,
		MaxBytes:    c.CommandMaxBytes,
		// A full queue refuses new commands (the cloud publisher sees the
		// error) rather than silently dropping queued ones.
		Discard: jetstream.DiscardNew,
		// The dedup window is one for every edge's commands, and a
		// message id is whatever the publisher sends: a commander's id
		// could swallow another commander's command for another edge.
		// So ids do not deduplicate here (the server's shortest window,
		// 100ms); a commander that must queue a command exactly once uses
		// Nats-Expected-Last-Subject-Sequence on its edge's subjects,
		// which no other edge's traffic can satisfy or disturb.
		Duplicates: commandsDedupWindow,
		// A command must still fit the edge's max payload with the
		// downlink's headers: a bigger one is refused to the commander
		// instead of blocking the edge's queue.
		MaxMsgSize: contract.MaxCommandSize,
	}
}

// EnsureCommandConsumer creates (or updates) the durable consumer through
// which edge pulls its queued commands. js must act in the CLOUD account.
func EnsureCommandConsumer(ctx context.Context, js jetstream.JetStream, edge string) error {
	_, err := js.CreateOrUpdateConsumer(ctx, contract.CommandsStream, jetstream.ConsumerConfig{
		Durable:       contract.CommandConsumer(edge),
		Description:   "Tether: commands for edge " + edge,
		FilterSubject: contract.CloudCommandSubject(edge),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short: a delivery lost with a dying link (typically to a pull
		// the edge made just before the link died) blocks this edge's
		// queue (one in flight) until it is redelivered. A redelivery of
		// a command that did arrive is recognised and only acked again.
		AckWait: 2 * time.Second,
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
	nc, js, err := s.cloudJetStream(ctx, credsFile, "tether-hub-setup")
	if err != nil {
		return err
	}
	defer nc.Close()
	for _, cfg := range []jetstream.StreamConfig{telemetryConfig(s.cfg), commandsConfig(s.cfg), edgeStatusConfig(s.cfg)} {
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

// WaitReady waits until the hub's JetStream, CLOUD streams and enrollment
// registrar are ready.
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

// EdgeDataRemoved counts what ForgetEdge deleted.
type EdgeDataRemoved struct {
	TelemetryMsgs uint64 `json:"telemetry_msgs"`
	CommandMsgs   uint64 `json:"command_msgs"`
	Consumer      bool   `json:"consumer"`
}

// ForgetEdge deletes the cloud side of an edge, as the cloud user: its
// command consumer and every message of edges.<edge>.> in the CLOUD
// streams (telemetry, queued commands, its last status report). It is
// idempotent.
func ForgetEdge(ctx context.Context, cloud *nats.Conn, edge string) (EdgeDataRemoved, error) {
	var out EdgeDataRemoved
	js, err := jetstream.NewWithDomain(cloud, JetStreamDomain)
	if err != nil {
		return out, err
	}
	err = js.DeleteConsumer(ctx, contract.CommandsStream, contract.CommandConsumer(edge))
	switch {
	case err == nil:
		out.Consumer = true
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return out, fmt.Errorf("forget edge %s: delete consumer %s: %w", edge, contract.CommandConsumer(edge), err)
	}
	for _, p := range []struct {
		stream string
		n      *uint64
	}{{TelemetryStream, &out.TelemetryMsgs}, {contract.CommandsStream, &out.CommandMsgs}, {EdgeStatusStream, new(uint64)}} {
		st, err := js.Stream(ctx, p.stream)
		if err != nil {
			return out, fmt.Errorf("forget edge %s: stream %s: %w", edge, p.stream, err)
		}
		subj := "edges." + edge + ".>"
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return out, fmt.Errorf("forget edge %s: stream %s: %w", edge, p.stream, err)
		}
		for _, n := range info.State.Subjects {
			*p.n += n
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return out, fmt.Errorf("forget edge %s: purge %s in %s: %w", edge, subj, p.stream, err)
		}
	}
	return out, nil
}

// cloudJetStream waits for JetStream and connects in process as the cloud
// user (named name), for the hub's own services; the caller closes nc.
func (s *Server) cloudJetStream(ctx context.Context, credsFile, name string) (*nats.Conn, jetstream.JetStream, error) {
	if err := s.WaitJetStream(ctx); err != nil {
		return nil, nil, err
	}
	nc, err := s.connectCloud(ctx, credsFile, name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.NewWithDomain(nc, JetStreamDomain)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// connectCloud connects in process as the cloud user, retrying until ctx
// ends: under load the in-process pipe can fail while the server settles.
func (s *Server) connectCloud(ctx context.Context, credsFile, name string) (*nats.Conn, error) {
	var nc *nats.Conn
	err := retry(ctx, func(context.Context) error {
		var err error
		nc, err = nats.Connect("", nats.InProcessServer(s.ns), nats.UserCredentials(credsFile), nats.Name(name),
			nats.MaxReconnects(-1))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect as cloud user: %w", err)
	}
	return nc, nil
}
