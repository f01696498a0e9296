package leaf

import (
	"fmt"
	"path/filepath"

	"github.com/tether-fabric/tether/internal/diskspace"
)

const (
	// minBufferBytes is the smallest buffer budget an edge runs with.
	minBufferBytes = 1 << 20
	// commandStreamMaxBytes is the edge COMMANDS stream's budget on a
	// roomy filesystem.
	commandStreamMaxBytes = 64 << 20
)

// budgets are the byte budgets of the edge's two streams.
type budgets struct {
	buffer   int64 // the telemetry buffer
	commands int64 // delivered commands
}

// fitBudgets fits the configured buffer budget to room, the bytes the
// store may use on its filesystem (free space plus what the store already
// holds). Like nats-server's own dynamic limit, the streams together get at
// most 3/4 of room: a file store that hits a full disk stops writing
// ("no space left on device" makes nats-server mark the store failed and,
// on some paths, disable JetStream), whereas a stream at its MaxBytes
// refuses new messages with a clean error and keeps working. The rest is
// headroom for JetStream's metadata, indexes and purge records, and for
// other files on the same filesystem.
func fitBudgets(want int64, room uint64) (budgets, error) {
	b := budgets{buffer: want, commands: min(commandStreamMaxBytes, int64(room/8))}
	if limit := int64(room/4*3) - b.commands; b.buffer > limit {
		b.buffer = limit
	}
	if b.buffer < minBufferBytes {
		// 5/8 of room is what the buffer gets on a small filesystem.
		return b, fmt.Errorf("the filesystem has room for %d bytes; the telemetry buffer needs a filesystem with at least %d (its budget, the commands stream and headroom): free space on it or use a bigger one", room, minBufferBytes*8/5)
	}
	return b, nil
}

// storeRoom is the free space of dataDir's filesystem plus what the
// edge's store there already holds.
func storeRoom(dataDir string) (free, room uint64, err error) {
	free, err = diskspace.Free(dataDir)
	if err != nil {
		return 0, 0, err
	}
	return free, free + diskspace.Used(filepath.Join(dataDir, "jetstream")), nil
}
