package contract

import (
	"fmt"
	"strconv"

	"github.com/nats-io/jwt/v2"
)

// What a cloud user owns in the CLOUD account: an inbox prefix and a few
// consumer names, all derived from its user name (the JWT's name claim,
// which only the store signs and which is unique among cloud users).
// nats-server permissions match whole subject tokens, so a consumer name
// cannot be owned by a prefix ("dashboard-*" is a literal): a user owns a
// fixed set of names instead.

// UserNameTemplate is the scoped signing key template token nats-server
// replaces with the connecting user's name; the policy compiler passes it
// as the user of the permission functions below.
const UserNameTemplate = "{{name()}}"

// OwnedConsumers is how many consumer names a cloud user owns on a stream:
// <user>_1 … <user>_OwnedConsumers.
const OwnedConsumers = 8

// CloudInboxPrefix returns the inbox prefix of cloud user (or
// UserNameTemplate): _INBOX.<user>. A cloud user other than an admin may
// receive replies only below it, so every client of such a user must set
// it (nats.go: nats.CustomInboxPrefix(CloudInboxPrefix(user))); replies on
// the default _INBOX.<random> are refused by the hub.
func CloudInboxPrefix(user string) string { return "_INBOX." + user }

// CloudInbox returns the subjects below user's inbox prefix: _INBOX.<user>.>.
func CloudInbox(user string) string { return CloudInboxPrefix(user) + ".>" }

// CloudConsumerNames returns the consumer names user owns on the cloud
// streams: <user>_1 … <user>_8. With nats.go's jetstream.OrderedConsumer,
// NamePrefix <user> makes consumers <user>_1, <user>_2, … (one per reset).
func CloudConsumerNames(user string) []string {
	out := make([]string, OwnedConsumers)
	for i := range out {
		out[i] = user + "_" + strconv.Itoa(i+1)
	}
	return out
}

// InboxPrefixOfCreds returns the inbox prefix (CloudInboxPrefix) of the
// user of a creds file, from its user JWT's name claim; "" when the name
// is not a cloud user name (then the default inbox is the only choice).
func InboxPrefixOfCreds(creds []byte) (string, error) {
	ujwt, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("inbox prefix: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(ujwt)
	if err != nil {
		return "", fmt.Errorf("inbox prefix: decode user JWT: %w", err)
	}
	if ValidateUserName(uc.Name) != nil {
		return "", nil
	}
	return CloudInboxPrefix(uc.Name), nil
}
