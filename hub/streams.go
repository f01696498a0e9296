package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/policy"
)

// edgeStatusMaxAge is how long an edge's last report is kept once it stops
// reporting: long enough to show an edge that has been offline for days
// with its last known backlog.
const edgeStatusMaxAge = 7 * 24 * time.Hour

// edgeStatusConfig keeps only the last report per edge (one message per
// subject), so its size grows with the fleet, not with time: about 600 B
// per edge.
func edgeStatusConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              contract.EdgeStatusStream,
		Description:       "Tether: the last status report of every edge (backlog, last error, stalled)",
		Subjects:          []string{contract.CloudStatusAll},
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

// gatewayBucketConfig is the CLOUD bucket of the edges' gateway
// configurations ('tether policy apply' writes it; an edge reads its own
// key when its link comes up, a direct get: contract/services.go). One
// value per edge, a few KB each.
func gatewayBucketConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       contract.GatewayBucket,
		Description:  "Tether: the service gateway configuration of every edge, from the access policy",
		History:      1,
		Storage:      jetstream.FileStorage,
		Replicas:     telemetryConfig(c).Replicas,
		MaxValueSize: 1 << 20,
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
		Name:        contract.TelemetryStream,
		Description: "Tether: telemetry of every edge, exactly once and in order per edge",
		Subjects:    []string{contract.CloudTelemetryAll},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  c.TelemetryDedupWindow,
		MaxAge:      c.TelemetryMaxAge,
		// Edges forward a backlog as fast batches (leaf/forwarder/fastbatch.go):
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
		Subjects:    []string{contract.CloudCommandsAll},
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

// ensureStreams creates or updates the CLOUD streams once JetStream is
// usable, retrying until ctx ends (in a cluster every hub tries; the
// operation is idempotent).
func (s *Server) ensureStreams(ctx context.Context, store *accounts.Store, edges []string) error {
	nc, js, err := s.cloudJetStream(ctx, store.CloudCredsFile(), "tether-hub-setup")
	if err != nil {
		return err
	}
	defer nc.Close()
	for _, cfg := range []jetstream.StreamConfig{telemetryConfig(s.cfg), commandsConfig(s.cfg), edgeStatusConfig(s.cfg)} {
		if err := s.ensureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	var kv jetstream.KeyValue
	if err := cloudjs.Retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, gatewayBucketConfig(s.cfg))
		return err
	}); err != nil {
		return fmt.Errorf("bucket %s: %w", contract.GatewayBucket, err)
	}
	s.loadGateways(ctx, js, kv, store)
	for _, e := range edges {
		if err := cloudjs.Retry(ctx, func(ctx context.Context) error { return cloudjs.EnsureCommandConsumer(ctx, js, e) }); err != nil {
			return err
		}
	}
	return nil
}

// loadGateways puts the gateway configurations of the store's applied
// policy into the bucket, so that a policy applied with --store-only
// reaches the edges once a hub starts from that store (each edge takes
// its own when its link comes up), and makes its group telemetry streams.
// A hub started from an older copy of the store than the bucket's policy
// version leaves both alone. Not fatal: the cloud keeps what it held.
func (s *Server) loadGateways(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, store *accounts.Store) {
	_, version, err := store.AppliedPolicy()
	if err == nil && version == 0 {
		return // no policy applied: nothing to hand out
	}
	var gws []policy.Gateway
	if err == nil {
		gws, err = store.Gateways()
	}
	var groups []policy.GroupStream
	if err == nil {
		groups, err = store.GroupStreams()
	}
	var changed []cloudjs.GatewayChange
	if err == nil {
		// In a forming cluster JetStream refuses for a while: retry, for
		// a bounded time (the hub's other duties wait for this).
		rctx, cancel := context.WithTimeout(ctx, loadPolicyFor)
		var stale error
		err = cloudjs.Retry(rctx, func(ctx context.Context) error {
			c, err := cloudjs.PutGateways(ctx, kv, gws, version)
			if errors.Is(err, cloudjs.ErrStaleGateways) {
				stale = err // the cloud holds a later policy: leave it alone
				return nil
			}
			if err != nil {
				return err
			}
			changed = c
			_, err = cloudjs.ApplyGroupStreams(ctx, js, groups)
			return err
		})
		cancel()
		if stale != nil {
			err = stale
		}
	}
	switch {
	case errors.Is(err, cloudjs.ErrStaleGateways):
		s.log.Warn("this hub's store holds an older policy than the cloud: its gateway configurations and group streams are not loaded", "version", version, "err", err)
	case err != nil:
		s.log.Error("gateway configurations or group streams of the store's policy not loaded", "version", version, "err", err)
	case len(changed) > 0:
		s.log.Info("gateway configurations of the store's policy loaded", "version", version, "edges", len(changed))
	}
}

// loadPolicyFor bounds how long a starting hub tries to load its store's
// gateway configurations and group streams into the cloud.
const loadPolicyFor = time.Minute

func (s *Server) ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	err := cloudjs.Retry(ctx, func(ctx context.Context) error {
		c := cfg
		// COMMANDS' sources are the access policy's group command streams
		// (cloudjs.ApplyGroupStreams): a hub's start keeps them.
		if cur, err := js.Stream(ctx, cfg.Name); err == nil && len(c.Sources) == 0 {
			c.Sources = cur.CachedInfo().Config.Sources
		}
		_, err := js.CreateOrUpdateStream(ctx, c)
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	s.log.Info("cloud stream ready", "stream", cfg.Name, "replicas", cfg.Replicas)
	return nil
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
	js, err := jetstream.NewWithDomain(nc, contract.CloudDomain)
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
	err := cloudjs.Retry(ctx, func(context.Context) error {
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
