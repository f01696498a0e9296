// Package cloudjs holds the JetStream set-up both the hubs and the
// operator's tools apply to the CLOUD account: an edge's durable command
// consumer, and the retry loop a forming cluster needs.
package cloudjs

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

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

// Retry runs op (each try bounded to 5s) until it succeeds or ctx ends:
// in a forming cluster JetStream answers "no leader" for a while.
func Retry(ctx context.Context, op func(context.Context) error) error {
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
