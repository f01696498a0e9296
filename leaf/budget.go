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

// bufferFit is what a refit of the running buffer's budget is decided
// from.
type bufferFit struct {
	configured int64  // buffer_max_bytes
	commands   int64  // the COMMANDS stream's budget in effect
	current    int64  // the buffer stream's MaxBytes now
	held       int64  // the bytes the buffer holds now
	room       uint64 // free space plus what the store holds (storeRoom)
	dropOldest bool   // buffer_full is drop_oldest
}

// refit is what refitBuffer decided.
type refit struct {
	// budget is the buffer budget the filesystem allows now.
	budget int64
	// change is true when budget differs enough from the current one to
	// update the stream.
	change bool
	// heldBack is true when the filesystem asks for less than the buffer
	// already holds: the budget stops at what it holds, so nothing stored
	// is dropped and every new message is refused.
	heldBack bool
	// tooSmall is true when the filesystem has room for less than
	// minBufferBytes of buffer (the least an edge starts with).
	tooSmall bool
}

// refitBuffer applies fitBudgets' rule to the room there is now: the
// buffer gets at most 3/4 of room minus the commands stream's budget, and
// never more than configured. With buffer_full reject the budget never
// goes below what the buffer holds: a stream whose MaxBytes is lowered
// below its bytes keeps them in nats-server 2.15.2 when it discards new
// messages, but drops the oldest in versions (and with DiscardOld) that
// enforce the limit on update. With drop_oldest lowering the budget drops
// the oldest messages down to it, as a full buffer would; its budget stays
// at least minBufferBytes, since it never refuses a message (a message
// bigger than the budget would be stored and dropped at once). A budget
// is at least 1 byte: 0 would mean no limit.
func refitBuffer(f bufferFit) refit {
	fit := min(f.configured, int64(f.room/4*3)-f.commands)
	r := refit{budget: fit, tooSmall: fit < minBufferBytes}
	if f.dropOldest {
		r.budget = max(fit, minBufferBytes)
	} else if f.held > 0 && fit < f.held {
		r.budget, r.heldBack = f.held, true
	}
	r.budget = max(r.budget, 1)
	diff := r.budget - f.current
	if diff < 0 {
		diff = -diff
	}
	// Small changes are left alone (the budget would follow every log line
	// written on the disk), except the last step back to the configured
	// budget.
	r.change = diff > 0 && (r.budget == f.configured || diff > min(1<<20, f.current/100))
	return r
}
