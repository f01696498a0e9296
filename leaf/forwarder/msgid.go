package forwarder

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tether-fabric/tether/internal/securefile"
)

// The cloud's TELEMETRY stream deduplicates on the Nats-Msg-Id header over
// one window shared by every edge, and nats-server offers no per-subject or
// per-account dedup nor a way for the hubs to stamp a header. So an edge's
// ids must be ones no other edge can produce: each is
//
//	<edge>:<origin>:<seq>:<tag>
//
// where tag is a MAC of origin and seq under a key that only this edge's
// plumbing holds (msgIDKeyFile in its data dir, 0600; site clients cannot
// read it, other edges never see it). A forged id for another edge's next
// messages would need that key: the ids stored in the cloud and the origin
// in the status reveal only past tags. The id stays the same on every
// resend of a buffered message (same seq, same key), which is what the
// dedup needs. Cost: 16 bytes more per id (in the hubs' dedup index too).

// msgIDKeyFile holds the per-edge secret of the message ids.
const msgIDKeyFile = "msgid.key"

// msgIDs makes a forwarder's message ids.
type msgIDs struct {
	prefix string // <edge>:<origin>:
	key    []byte
}

// loadMsgIDs reads (or makes, on first use) the edge's id key.
func loadMsgIDs(dataDir, edge, origin string) (msgIDs, error) {
	path := filepath.Join(dataDir, msgIDKeyFile)
	key, err := securefile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return msgIDs{}, err
		}
		err = securefile.Write(path, key, 0o600)
	}
	if err != nil {
		return msgIDs{}, fmt.Errorf("message id key: %w", err)
	}
	if len(key) < 16 {
		return msgIDs{}, fmt.Errorf("message id key %s: %d bytes, want 32 (remove it to make a new one)", path, len(key))
	}
	return msgIDs{prefix: edge + ":" + origin + ":", key: key}, nil
}

// id is the message id of buffer sequence seq.
func (m msgIDs) id(seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(m.prefix))
	mac.Write([]byte(s))
	var b strings.Builder
	b.Grow(len(m.prefix) + len(s) + 17)
	b.WriteString(m.prefix)
	b.WriteString(s)
	b.WriteByte(':')
	b.WriteString(base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12]))
	return b.String()
}

// forwarderOwned reports whether header k of a buffered message is one the
// forwarder sets or drops: its own (Tether-Edge, -Origin, -Seq, whatever a
// site client put there) and every Nats- header, which is NATS's own
// (message ids and expectations meant for the edge's stream, request
// info, rollups, TTLs) and would otherwise make the cloud stream refuse
// or act on a message the edge has acknowledged.
func forwarderOwned(k string) bool {
	return hasPrefixFold(k, "Nats-") || hasPrefixFold(k, "Tether-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
