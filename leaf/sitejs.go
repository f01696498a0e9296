package leaf

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

// siteMaxStore is the site account's JetStream file limit for a COMMANDS
// stream of commandsMaxBytes: room for its consumers' state besides.
func siteMaxStore(commandsMaxBytes int64) int64 { return commandsMaxBytes + 16<<20 }

// siteMaxConsumers bounds the consumers site clients may keep on the
// site's COMMANDS stream.
const siteMaxConsumers = 1024

// enableJetStream gives both local accounts JetStream in the edge's
// domain: the plumbing account without limits of its own (the server's
// store limit covers the buffer), the site account with room for the
// COMMANDS stream only (one stream, its budget plus room for consumer
// state, no memory streams beyond a little for ordered consumers).
func (s *Server) enableJetStream() error {
	limits := map[string]map[string]server.JetStreamAccountLimits{
		contract.EdgePlumbingAccount: {"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1, MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}},
		contract.EdgeSiteAccount: {"": {MaxMemory: 16 << 20, MaxStore: siteMaxStore(s.commandsMaxBytes), MaxStreams: 1,
			MaxConsumers: siteMaxConsumers, MaxAckPending: -1, MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}},
	}
	for name, l := range limits {
		acc, err := s.ns.LookupAccount(name)
		if err != nil {
			return fmt.Errorf("local account %s: %w", name, err)
		}
		if err := acc.EnableJetStream(l, nil); err != nil {
			return fmt.Errorf("jetstream for local account %s: %w", name, err)
		}
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
// through a short-lived in-process connection of the site account's
// internal user.
func (s *Server) ensureSiteCommands(ctx context.Context, pub string, sign nats.SignatureHandler) error {
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name("tether-leaf-site"), nats.Nkey(pub, sign))
	if err != nil {
		return fmt.Errorf("site account connection: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, commandsConfig(s.commandsMaxBytes)); err != nil {
		return fmt.Errorf("command stream %s: %w", CommandStream, err)
	}
	return nil
}
