package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
)

// One live link per edge identity. Each run of an edge presents its own
// TLS client key, made in memory at start and never written (leaf/server.go,
// pki.RunCertificate); the hubs ask for it on their edge listeners and read
// its fingerprint from the connection. A copy of the edge's creds cannot
// present it, whatever server name it gives. Every hub records the links
// it holds in the CLOUD key-value bucket LinksBucket (key: account, value:
// the run's key and name, and the hub), refreshed while the link lives and
// expiring with its hub. A new link whose account is held by another live
// run is a duplicate: the hub closes it and says so. The same run
// reconnecting (same key, on this or another hub) is not.
//
// nats-server itself replaces, when it accepts a leaf connection, an
// older one on the same hub with the same server name, cluster and local
// account (leafnode.go, addLeafNodeConnection), before any hook runs; all
// three are visible to site clients. A copy that does so pushes the live
// link off for one reconnect: the hub sees the holder closed as a
// "Duplicate Remote LeafNode Connection" by a link that lacks the holder's
// key, closes that link, and keeps the record for the holder, whose
// reconnect takes it back. Links of an enrollment token's enroll user
// never hold the record; once the token was used they are closed
// (usedTokens).
const (
	// LinksBucket holds, per edge account, the run holding its link and
	// the last link refused (contract.RefusedLinkKey).
	LinksBucket = contract.LinksBucket
	// refusedEvery bounds how often one account's refusal is recorded.
	refusedEvery = time.Second
	// linksTTL bounds how long a record outlives its hub.
	linksTTL     = 30 * time.Second
	linksRefresh = 10 * time.Second
	linksPoll    = 100 * time.Millisecond
	// undecidedFor bounds how long a new link waits for nats-server to
	// report why the holder's link on this hub closed (it records closed
	// connections asynchronously).
	undecidedFor = time.Second
	// usedEnrollGrace is how long a used token's link may stay: long
	// enough for a device that presents a used token by mistake to hear
	// the registrar's "already used"; it never holds the edge's link.
	usedEnrollGrace = 2 * time.Second
)

// linkRecord is the value stored per edge account.
type linkRecord struct {
	Name string `json:"name"` // the edge run's server name
	// Key is the run's TLS client key fingerprint (pki.RunKeyID); empty
	// for an edge that presented none (older versions).
	Key   string    `json:"key,omitempty"`
	Hub   string    `json:"hub"`
	CID   uint64    `json:"cid"`
	Since time.Time `json:"since"`
}

// sameRun reports whether rec (a new link) is the run that holds cur. A
// holder with a key is only ever matched by that key; a holder without
// one (an older edge or hub) by its name.
func sameRun(cur, rec linkRecord) bool {
	if cur.Key != "" {
		return rec.Key == cur.Key
	}
	return cur.Name == rec.Name || cur.Name == ""
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

// localLink is a leaf connection of this hub.
type localLink struct {
	account, name string
	key           string    // the run's TLS key fingerprint, "" if none
	enrollUser    string    // set for an enrollment token's enroll user
	seen          time.Time // first seen by the guard
	refreshed     time.Time
	gone          time.Time // first seen closed, while its close reason is unknown
	claimed       bool      // holds (or held) its account's record
	duplicate     bool      // refused: closed by the guard
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
	used, err := watchUsedTokens(ctx, js, s.cfg)
	if err != nil {
		return err
	}
	defer used.stop()
	held := map[uint64]*localLink{}
	refused := map[string]time.Time{} // per account: last refusal recorded
	t := time.NewTicker(linksPoll)
	defer t.Stop()
	for {
		s.checkLinks(ctx, kv, held, refused, used)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) checkLinks(ctx context.Context, kv jetstream.KeyValue, held map[uint64]*localLink, refused map[string]time.Time, used *usedTokens) {
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
			h = s.newLocalLink(l, now)
			held[l.ID] = h
		}
		switch {
		case h.duplicate:
		case h.enrollUser != "":
			s.checkEnrollLink(l, h, used, now)
		case !h.claimed:
			s.claim(ctx, kv, l, h, now, live, refused)
		case now.Sub(h.refreshed) >= linksRefresh:
			rec, _ := json.Marshal(linkRecord{Name: l.Name, Key: h.key, Hub: s.cfg.Name, CID: l.ID, Since: h.refreshed})
			if _, err := kv.Put(ctx, l.Account, rec); err == nil {
				h.refreshed = now
			}
		}
	}
	for cid, h := range held {
		if live[cid] {
			continue
		}
		if !h.claimed {
			delete(held, cid)
			continue
		}
		// A holder replaced by a newer connection of the same name keeps
		// its record: the newcomer is either this run again (it took the
		// record over already) or a copy, refused above; the holder's
		// reconnect takes it back. Otherwise our link closed: free the
		// record if it is still ours. nats-server records why a
		// connection closed a little after it is gone: wait for it.
		reason := s.closedReason(cid)
		if reason == "" {
			if h.gone.IsZero() {
				h.gone = now
			}
			if now.Sub(h.gone) < undecidedFor {
				continue
			}
		}
		delete(held, cid)
		if reason == server.DuplicateRemoteLeafnodeConnection.String() {
			continue
		}
		if e, err := kv.Get(ctx, h.account); err == nil {
			var r linkRecord
			if json.Unmarshal(e.Value(), &r) == nil && r.Hub == s.cfg.Name && r.CID == cid {
				_ = kv.Delete(ctx, h.account, jetstream.LastRevision(e.Revision()))
			}
		}
	}
}

// newLocalLink reads what the hub knows of leaf connection l beyond
// Leafz: the run key its TLS handshake proved and its user.
func (s *Server) newLocalLink(l *server.LeafInfo, now time.Time) *localLink {
	h := &localLink{account: l.Account, name: l.Name, seen: now}
	cz, err := s.ns.Connz(&server.ConnzOptions{CID: l.ID, Username: true})
	if err != nil || len(cz.Conns) != 1 {
		return h // closed meanwhile: the next poll forgets it
	}
	ci := cz.Conns[0]
	if len(ci.TLSPeerCerts) > 0 {
		h.key = ci.TLSPeerCerts[0].SubjectPKISha256
	}
	if uc, err := jwt.DecodeUserClaims(ci.JWT); err == nil && contract.IsEnrollUser(uc) {
		h.enrollUser = uc.Subject
	}
	return h
}

// checkEnrollLink closes the link of a used token's enroll user once its
// grace is over.
func (s *Server) checkEnrollLink(l *server.LeafInfo, h *localLink, used *usedTokens, now time.Time) {
	if !used.has(h.enrollUser) || now.Sub(h.seen) < usedEnrollGrace {
		return
	}
	h.duplicate = true
	s.log.Warn("link of a used enrollment token closed: a token enrolls one device, once; if it was not this fabric's operator or device, the token was copied",
		"account", l.Account, "enroll_user", h.enrollUser, "link", l.Name, "remote", fmt.Sprintf("%s:%d", l.IP, l.Port))
	_ = s.ns.DisconnectClientByID(l.ID)
}

// claim records l as its account's link, or refuses it while another run
// holds it. A link whose claim cannot be decided yet is tried again at the
// next poll.
func (s *Server) claim(ctx context.Context, kv jetstream.KeyValue, l *server.LeafInfo, h *localLink, now time.Time, live map[uint64]bool, refused map[string]time.Time) {
	undecided := now.Sub(h.seen) < undecidedFor
	dup, copied, wait := s.claimLink(ctx, kv, l, h, now, live, undecided)
	switch {
	case wait:
		return
	case dup == nil:
		h.claimed, h.refreshed = true, now
		return
	}
	h.duplicate = true
	recordRefusal(ctx, kv, s.cfg.Name, l, copied, now, refused)
	attrs := []any{"account", l.Account, "refused", l.Name, "refused_key", short(h.key), "remote", fmt.Sprintf("%s:%d", l.IP, l.Port),
		"holder", dup.Name, "holder_key", short(dup.Key), "holder_hub", dup.Hub, "holder_since", dup.Since.Format(time.RFC3339)}
	if copied {
		s.log.Error("link with the live run's name but not its key refused: a copy of the edge's creds is in use; rotate or revoke the edge", attrs...)
	} else {
		s.log.Error("second link for one edge identity refused: another run of the edge holds the link; stop one of them, or rotate/revoke the edge if its creds were copied", attrs...)
	}
	_ = s.ns.DisconnectClientByID(l.ID)
}

// recordRefusal writes the refused link under its account's
// RefusedLinkKey for 'tether status', at most once per refusedEvery per
// account (a copy retrying in a tight loop).
func recordRefusal(ctx context.Context, kv jetstream.KeyValue, hub string, l *server.LeafInfo, copied bool, now time.Time, refused map[string]time.Time) {
	if now.Sub(refused[l.Account]) < refusedEvery {
		return
	}
	refused[l.Account] = now
	r := contract.RefusedLink{At: now.UTC(), Hub: hub, Remote: fmt.Sprintf("%s:%d", l.IP, l.Port), Name: l.Name, Reason: contract.RefusedSecondRun}
	if copied {
		r.Reason = contract.RefusedCopy
	}
	data, _ := json.Marshal(r)
	_, _ = kv.Put(ctx, contract.RefusedLinkKey(l.Account), data)
}

// short abbreviates a key fingerprint for logs.
func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}

// claimLink records l as its account's link, unless another run holds it;
// it then returns the holder, and whether l gave the holder's name (a copy
// of the creds). wait asks to decide at a later poll: the holder's link on
// this hub is closed but nats-server has not said why yet.
func (s *Server) claimLink(ctx context.Context, kv jetstream.KeyValue, l *server.LeafInfo, h *localLink, now time.Time, live map[uint64]bool, undecided bool) (holder *linkRecord, copied, wait bool) {
	mine := linkRecord{Name: l.Name, Key: h.key, Hub: s.cfg.Name, CID: l.ID, Since: now}
	rec, _ := json.Marshal(mine)
	for range 3 {
		e, err := kv.Get(ctx, l.Account)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := kv.Create(ctx, l.Account, rec); err == nil {
				return nil, false, false
			}
			continue // someone else just claimed it: look again
		}
		if err != nil {
			return nil, false, false // the bucket is unavailable: do not refuse anyone
		}
		var cur linkRecord
		if json.Unmarshal(e.Value(), &cur) == nil && !sameRun(cur, mine) {
			if cur.Hub != s.cfg.Name || live[cur.CID] {
				return &cur, cur.Name == l.Name, false
			}
			// The holder's link on this hub is closed. Replaced by this
			// newcomer (nats-server does so for the same name): the
			// record stays the holder's. Otherwise it is stale (the close
			// was not processed yet): take it over.
			switch reason := s.closedReason(cur.CID); {
			case reason == server.DuplicateRemoteLeafnodeConnection.String():
				return &cur, cur.Name == l.Name, false
			case reason == "" && undecided:
				return nil, false, true
			}
		}
		// The same run reconnecting (or an unreadable record): take it over.
		if _, err := kv.Update(ctx, l.Account, rec, e.Revision()); err == nil {
			return nil, false, false
		}
	}
	return nil, false, false
}

// closedReason is why nats-server closed this hub's connection cid, or ""
// when it does not know (yet).
func (s *Server) closedReason(cid uint64) string {
	cz, err := s.ns.Connz(&server.ConnzOptions{CID: cid, State: server.ConnClosed})
	if err != nil || len(cz.Conns) != 1 {
		return ""
	}
	return cz.Conns[0].Reason
}
