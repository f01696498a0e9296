package fleet

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
)

// RemoveResult describes a decommissioned edge.
type RemoveResult struct {
	Edge    string           `json:"edge"`
	Account string           `json:"account"`
	Revoked []PushResult     `json:"revoked"`
	Data    *EdgeDataRemoved `json:"data_removed,omitempty"`
	Deleted []DeleteResult   `json:"deleted"`
}

// Remove decommissions an edge: every credential revoked and pushed (the
// hubs close its link and refuse it), its cloud data and command consumer
// deleted (unless keepData), its account deleted from every hub's resolver,
// and the edge removed from the store. sys is a system-account connection,
// cloud a CLOUD-user connection. Each step is idempotent, so a Remove that
// failed half-way can be run again; the store is changed last.
func Remove(ctx context.Context, s *accounts.Store, sys, cloud *nats.Conn, edge string, keepData bool) (*RemoveResult, error) {
	e, err := s.Edge(edge)
	if err != nil {
		return nil, err
	}
	res := &RemoveResult{Edge: edge, Account: e.Account.Pub}
	if _, err := s.RevokeEdge(edge); err != nil {
		return res, err
	}
	res.Revoked, err = PushAccount(ctx, s, sys, e.Account.Name)
	if err != nil {
		return res, fmt.Errorf("remove %s: revoke: %w", edge, err)
	}
	if !keepData {
		d, err := ForgetEdge(ctx, cloud, edge)
		if err != nil {
			return res, fmt.Errorf("remove %s: %w", edge, err)
		}
		res.Data = &d
	}
	res.Deleted, err = DeleteAccount(ctx, s, sys, e.Account.Pub)
	if err != nil {
		return res, fmt.Errorf("remove %s: delete account from the hubs' resolvers: %w", edge, err)
	}
	return res, s.RemoveEdge(edge)
}
