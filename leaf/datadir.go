package leaf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/dirlock"
	"github.com/tether-fabric/tether/internal/securefile"
)

// identityFile records, in the data dir, which edge identity wrote it: a
// buffer holds one edge's telemetry under its origin, and another edge
// forwarding it would send it as its own.
const identityFile = "edge-identity.json"

type dirIdentity struct {
	Edge    string `json:"edge"`
	Account string `json:"account"`
}

// openDataDir creates the data dir if needed, locks it for this process,
// checks that no other edge identity wrote it (recording this one on first
// use), and moves streams of an edge older than the local accounts into
// them. The caller releases the lock at shutdown.
func openDataDir(dir, edge, account string) (*dirlock.Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	lock, err := dirlock.Acquire(dir, "edge")
	if err != nil {
		return nil, err
	}
	if err := claimDataDir(dir, dirIdentity{Edge: edge, Account: account}); err != nil {
		lock.Release()
		return nil, err
	}
	// nats-server keeps its store in <store_dir>/jetstream.
	if err := migrateLegacyStreams(filepath.Join(dir, "jetstream", "jetstream")); err != nil {
		lock.Release()
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	return lock, nil
}

func claimDataDir(dir string, me dirIdentity) error {
	path := filepath.Join(dir, identityFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b, _ := json.Marshal(me)
		if err := securefile.Write(path, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("data dir %s: record the edge identity: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	var was dirIdentity
	if err := json.Unmarshal(data, &was); err != nil {
		return fmt.Errorf("data dir %s: %s: %w", dir, path, err)
	}
	if was != me {
		return fmt.Errorf("data dir %s belongs to edge %q (account %s), this is edge %q (account %s): its buffer holds that edge's telemetry; give this edge its own data dir (or remove %s once edge %q's data is no longer needed)",
			dir, was.Edge, was.Account, me.Edge, me.Account, dir, was.Edge)
	}
	return nil
}

// migrateLegacyStreams moves the streams an older edge kept in the
// server's global account into the site account that holds them now (the
// telemetry buffer with its backlog and origin, the delivered commands).
// Run before the server starts; a dir without legacy streams is left
// alone.
func migrateLegacyStreams(storeDir string) error {
	moves := map[string]string{BufferStream: contract.EdgeSiteAccount, CommandStream: contract.EdgeSiteAccount}
	for stream, account := range moves {
		from := filepath.Join(storeDir, "$G", "streams", stream)
		to := filepath.Join(storeDir, account, "streams", stream)
		if _, err := os.Stat(from); err != nil {
			continue
		}
		if _, err := os.Stat(to); err == nil {
			continue // already in place; the legacy copy stays untouched
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("move stream %s into account %s: %w", stream, account, err)
		}
	}
	return nil
}
