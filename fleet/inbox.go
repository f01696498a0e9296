package fleet

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// UserOptions returns the nats options of the user of the creds file at
// path: its credentials and, for a cloud user, its own inbox prefix
// (contract.CloudInboxPrefix, from the user JWT's name). A cloud user
// other than an admin may receive replies only below that prefix, so
// without it every request (JetStream API calls, service calls) would go
// unanswered.
func UserOptions(path string) ([]nats.Option, error) {
	data, err := securefile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("creds: %w", err)
	}
	prefix, err := contract.InboxPrefixOfCreds(data)
	if err != nil {
		return nil, fmt.Errorf("creds %s: %w", path, err)
	}
	opts := []nats.Option{nats.UserCredentials(path)}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	return opts, nil
}
