package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-fabric/tether/internal/cloudjs"
)

// One live link per edge identity. Each run of an edge has its own server
// name (edge-<name>-<run>), so a second process started with the same
// creds is a different name on the same account. Every hub records the
// links it holds in the CLOUD key-value bucket LinksBucket (key: account,
// value: who holds it), refreshed while the link lives and expiring with
// its hub. A new link whose account is held by another live run is a
// duplicate: the hub closes it and says so. A run that reconnects (same
// name, on this or another hub) is not.
const (
	// LinksBucket holds, per edge account, the run holding its link.
	LinksBucket = "TETHER_LINKS"
	// linksTTL bounds how long a record outlives its hub.
	linksTTL     = 30 * time.Second
	linksRefresh = 10 * time.Second
	linksPoll    = 100 * time.Millisecond
)

// linkRecord is the value stored per edge account.
type linkRecord struct {
	Name  string    `json:"name"` // the edge run's server name
	Hub   string    `json:"hub"`
	CID   uint64    `json:"cid"`
	Since time.Time `json:"since"`
}

func linksBucketConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LinksBucket,
		Description: "Tether: which edge run holds each edge's link (one per edge)",
		History:     1,
		TTL:         linksTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    telemetryConfig(c).Replicas,
	}
}

// localLink is a link this hub holds.
type localLink struct {
	account, name string
	refreshed     time.Time
	duplicate     bool
}

// guardLinks watches this hub's leaf connections until ctx ends.
func (s *Server) guardLinks(ctx context.Context, credsFile string) error {
	nc, js, err := s.cloudJetStream(ctx, credsFile, "tether-hub-links")
	if err != nil {
		return err
	}
	defer nc.Close()
	var kv jetstream.KeyValue
	if err := cloudjs.Retry(ctx, func(ctx context.Context) error {
		kv, err = js.CreateOrUpdateKeyValue(ctx, linksBucketConfig(s.cfg))
		return err
	}); err != nil {
		return fmt.Errorf("bucket %s: %w", LinksBucket, err)
	}
	held := map[uint64]*localLink{}
	t := time.NewTicker(linksPoll)
	defer t.Stop()
	for {
		s.checkLinks(ctx, kv, held)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) checkLinks(ctx context.Context, kv jetstream.KeyValue, held map[uint64]*localLink) {
	lz, err := s.ns.Leafz(&server.LeafzOptions{})
	if err != nil {
		return
	}
	now := time.Now()
	live := map[uint64]bool{}
	for _, l := range lz.Leafs {
		live[l.ID] = true
	}
	for _, l := range lz.Leafs {
		h, known := held[l.ID]
		if !known {
			h = &localLink{account: l.Account, name: l.Name}
			held[l.ID] = h
			if dup := s.claimLink(ctx, kv, l, now, live); dup != nil {
				h.duplicate = true
				s.log.Error("second link for one edge identity refused: another run of the edge holds the link; stop one of them, or rotate/revoke the edge if its creds were copied",
					"account", l.Account, "refused", l.Name, "holder", dup.Name, "holder_hub", dup.Hub, "holder_since", dup.Since.Format(time.RFC3339))
				_ = s.ns.DisconnectClientByID(l.ID)
				continue
			}
			h.refreshed = now
			continue
		}
		if !h.duplicate && now.Sub(h.refreshed) >= linksRefresh {
			rec, _ := json.Marshal(linkRecord{Name: l.Name, Hub: s.cfg.Name, CID: l.ID, Since: h.refreshed})
			if _, err := kv.Put(ctx, l.Account, rec); err == nil {
				h.refreshed = now
			}
		}
	}
	for cid, h := range held {
		if live[cid] {
			continue
		}
		delete(held, cid)
		if h.duplicate {
			continue
		}
		// Our link closed: free the record if it is still ours.
		if e, err := kv.Get(ctx, h.account); err == nil {
			var r linkRecord
			if json.Unmarshal(e.Value(), &r) == nil && r.Hub == s.cfg.Name && r.CID == cid {
				_ = kv.Delete(ctx, h.account, jetstream.LastRevision(e.Revision()))
			}
		}
	}
}

// claimLink records l as its account's link, unless another run holds it;
// it then returns the holder.
func (s *Server) claimLink(ctx context.Context, kv jetstream.KeyValue, l *server.LeafInfo, now time.Time, live map[uint64]bool) *linkRecord {
	rec, _ := json.Marshal(linkRecord{Name: l.Name, Hub: s.cfg.Name, CID: l.ID, Since: now})
	for range 3 {
		e, err := kv.Get(ctx, l.Account)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := kv.Create(ctx, l.Account, rec); err == nil {
				return nil
			}
			continue // someone else just claimed it: look again
		}
		if err != nil {
			return nil // the bucket is unavailable: do not refuse anyone
		}
		var cur linkRecord
		if json.Unmarshal(e.Value(), &cur) == nil && cur.Name != l.Name && cur.Name != "" {
			// A record of this hub whose link is closed is stale (the
			// close was not processed yet): take it over.
			if cur.Hub != s.cfg.Name || live[cur.CID] {
				return &cur
			}
		}
		// The same run reconnecting (or an unreadable record): take it over.
		if _, err := kv.Update(ctx, l.Account, rec, e.Revision()); err == nil {
			return nil
		}
	}
	return nil
}
