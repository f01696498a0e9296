package cloudjs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/policy"
)

// gatewayVersionKey is the key of contract.GatewayBucket that holds the
// version of the applied policy whose gateway configurations the bucket
// holds. Edges read only their own key (contract.EdgeGatewayImport).
const gatewayVersionKey = "_policy-version"

// ErrStaleGateways is returned by PutGateways for configurations of an
// older policy version than the one the bucket holds.
var ErrStaleGateways = errors.New("the gateway bucket holds a newer policy version")

// GatewayChange is one edge's configuration that PutGateways wrote.
type GatewayChange struct {
	Edge string
	Data []byte // the JSON of its policy.Gateway
	Rev  uint64 // its bucket revision (contract.HeaderGatewayRevision)
}

// PutGateways writes the gateway configurations of policy version version
// into the bucket, each only when its value changed, and returns those it
// wrote. A version older than the bucket's is refused with
// ErrStaleGateways (a hub starting from an older copy of the store must
// not undo a later apply); version 0 (unknown) writes without that check
// and leaves the bucket's version alone.
func PutGateways(ctx context.Context, kv jetstream.KeyValue, gws []policy.Gateway, version int) ([]GatewayChange, error) {
	if version > 0 {
		cur, err := kv.Get(ctx, gatewayVersionKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("gateway bucket %s key %s: %w", contract.GatewayBucket, gatewayVersionKey, err)
		default:
			if held, _ := strconv.Atoi(string(cur.Value())); held > version {
				return nil, fmt.Errorf("policy version %d: %w (%d)", version, ErrStaleGateways, held)
			}
		}
	}
	var changed []GatewayChange
	for _, gw := range gws {
		data, err := json.Marshal(gw)
		if err != nil {
			return nil, err
		}
		cur, err := kv.Get(ctx, gw.Edge)
		if err == nil && bytes.Equal(cur.Value(), data) {
			continue
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("gateway bucket %s key %s: %w", contract.GatewayBucket, gw.Edge, err)
		}
		rev, err := kv.Put(ctx, gw.Edge, data)
		if err != nil {
			return nil, fmt.Errorf("gateway bucket %s key %s: %w", contract.GatewayBucket, gw.Edge, err)
		}
		changed = append(changed, GatewayChange{Edge: gw.Edge, Data: data, Rev: rev})
	}
	if version > 0 {
		if _, err := kv.Put(ctx, gatewayVersionKey, []byte(strconv.Itoa(version))); err != nil {
			return changed, fmt.Errorf("gateway bucket %s key %s: %w", contract.GatewayBucket, gatewayVersionKey, err)
		}
	}
	return changed, nil
}
