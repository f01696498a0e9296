package leaf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The space reserve: a file the edge keeps in its data dir so that, when
// another program fills the filesystem, the buffer can still drop what the
// cloud has confirmed. nats-server purges a prefix of the buffer by
// rewriting the block the prefix ends in (filestore compact), which needs
// up to a block's size of free space: without it every purge fails with
// "no space left on device", the forwarder resends the same confirmed
// messages forever and the buffer stays full. With it, the first purge
// that fails releases the reserve and is tried again; the reserve is made
// again once the filesystem has room for it twice over.
const (
	reserveFile = "space-reserve"
	// reserveBytes covers one block of the buffer: nats-server 2.15.2
	// sizes a stream's blocks at 4 MiB whatever its MaxBytes above 128 KiB
	// (filestore.go dynBlkSize), plus room for the block's index.
	reserveBytes = 4<<20 + 64<<10
)

// spaceReserve holds the reserve file; safe for concurrent use.
type spaceReserve struct {
	path string
	mu   sync.Mutex
}

func newSpaceReserve(dataDir string) *spaceReserve {
	return &spaceReserve{path: filepath.Join(dataDir, reserveFile)}
}

// held reports whether the reserve file is there in full.
func (r *spaceReserve) held() bool {
	fi, err := os.Stat(r.path)
	return err == nil && fi.Size() >= reserveBytes
}

// ensure makes the reserve file when it is missing. It writes real data
// (a sparse file would reserve nothing) and removes what it wrote when the
// filesystem has no room for all of it.
func (r *spaceReserve) ensure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held() {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("space reserve %s: %w", r.path, err)
	}
	chunk := make([]byte, 64<<10)
	for left := reserveBytes; left > 0 && err == nil; left -= len(chunk) {
		_, err = f.Write(chunk[:min(left, len(chunk))])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(r.path)
		return fmt.Errorf("space reserve %s: %w", r.path, err)
	}
	return nil
}

// release removes the reserve file and reports whether it freed anything.
func (r *spaceReserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.held()
	if err := os.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return held
}

// releaseReserve is the forwarder's FreeSpace: it gives up the space
// reserve so a purge can rewrite its block, and says so in the log.
func (s *Server) releaseReserve() bool {
	if s.reserve == nil || !s.reserve.release() {
		return false
	}
	s.log.Warn("the data dir's filesystem is full: released the space reserve so the buffer can drop what the cloud confirmed",
		"reserve_bytes", reserveBytes, "data_dir", s.cfg.DataDir)
	return true
}
