package cloudjs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tether-fabric/tether/contract"
)

// OwnerOf returns the cloud user nc acts as, from its inbox prefix
// (contract.CloudInboxPrefix), or "" for a connection on the default inbox.
func OwnerOf(nc *nats.Conn) string {
	user, _ := strings.CutPrefix(nc.Opts.InboxPrefix, contract.CloudInboxPrefix(""))
	return user
}

// CreateOwnedConsumer creates a new consumer on stream with cfg in the
// first free one of the names user owns (contract.CloudConsumerNames): a
// reader may create no other. Each call makes a consumer of its own, never
// one another run of the same user is reading (a run id in its metadata
// makes the configurations differ, so an occupied name is refused as
// existing). With user "" the consumer gets a random name.
func CreateOwnedConsumer(ctx context.Context, js jetstream.JetStream, stream, user string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	md := map[string]string{"tether-run": nuid.Next()}
	for k, v := range cfg.Metadata {
		md[k] = v
	}
	cfg.Metadata = md
	names := contract.CloudConsumerNames(user)
	if user == "" {
		names = []string{nuid.Next()}
	}
	for _, name := range names {
		cfg.Name, cfg.Durable = name, ""
		cons, err := js.CreateConsumer(ctx, stream, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create consumer %s on stream %s: %w", name, stream, err)
		}
		return cons, nil
	}
	return nil, fmt.Errorf("create a consumer on stream %s: all %d consumer names of user %s (%s … %s) are in use: delete one or wait for its inactive threshold",
		stream, len(names), user, names[0], names[len(names)-1])
}
