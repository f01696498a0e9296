package leaf

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

// siteMaxStreams is what the site account's JetStream holds: the
// telemetry buffer and the COMMANDS stream, both made by the edge; site
// clients may not create streams (sitePermissions), and this limit holds
// even if a way around that were found.
const siteMaxStreams = 2

// siteMaxConsumers bounds the consumers site clients may keep on the
// site's streams.
const siteMaxConsumers = 1024

// enableJetStream gives the site account JetStream in the edge's domain:
// its two streams (the server's store limit covers them, each has its own
// byte budget), a little memory for ordered consumers, a bounded number of
// consumers. The plumbing account has none: it holds no streams.
func (s *Server) enableJetStream() error {
	acc, err := s.ns.LookupAccount(contract.EdgeSiteAccount)
	if err != nil {
		return fmt.Errorf("local account %s: %w", contract.EdgeSiteAccount, err)
	}
	limits := map[string]server.JetStreamAccountLimits{"": {MaxMemory: 16 << 20, MaxStore: -1,
		MaxStreams: siteMaxStreams, MaxConsumers: siteMaxConsumers, MaxAckPending: -1, MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}}
	if err := acc.EnableJetStream(limits, nil); err != nil {
		return fmt.Errorf("jetstream for local account %s: %w", contract.EdgeSiteAccount, err)
	}
	return nil
}

// commandsConfig is the site's COMMANDS stream: commands delivered to the
// edge, kept 7 days for site clients to consume. Its message ids (the
// command's cloud sequence) make a redelivery after a crash a duplicate.
func commandsConfig(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        CommandStream,
		Description: "Tether: commands delivered to this edge",
		Subjects:    []string{contract.LocalCommands},
		Storage:     jetstream.FileStorage,
		MaxAge:      7 * 24 * time.Hour,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	}
}

// ensureSiteCommands creates or updates the site account's COMMANDS stream
// through the edge's own site-account connection.
func (s *Server) ensureSiteCommands(ctx context.Context) error {
	js, err := jetstream.New(s.siteNC)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, commandsConfig(s.commandsMaxBytes)); err != nil {
		return fmt.Errorf("command stream %s: %w", CommandStream, err)
	}
	return nil
}
