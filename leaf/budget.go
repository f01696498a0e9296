package leaf

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tether-fabric/tether/internal/diskspace"
)

const (
	// minBufferBytes is the smallest buffer budget an edge runs with.
	minBufferBytes = 1 << 20
	// commandStreamMaxBytes is the edge COMMANDS stream's budget on a
	// roomy filesystem.
	commandStreamMaxBytes = 64 << 20
	// refitTimeout bounds one refit's JetStream requests.
	refitTimeout = 5 * time.Second
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
	// budget is the buffer budget to put in effect.
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
// never more than configured.
//
// With buffer_full reject the budget never goes below what the buffer
// holds. nats-server 2.15.2 keeps the messages of a DiscardNew stream
// whose MaxBytes is lowered below its bytes, but older releases drop the
// oldest on such an update whatever the discard policy; stopping at what
// the buffer holds drops nothing on either and refuses every new message.
// With drop_oldest lowering the budget drops the oldest messages down to
// it, as a full buffer would; its budget stays at least minBufferBytes,
// since it never refuses a message (one bigger than the budget would be
// stored and dropped at once). A budget is at least 1 byte: 0 would mean
// no limit.
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

// fitBudgets fits the stream budgets to the filesystem of the data dir
// and logs when the buffer gets less than configured.
func (s *Server) fitBudgets() error {
	free, room, err := s.measureRoom(s.cfg.DataDir)
	if err != nil {
		s.log.Warn("cannot measure the data dir's filesystem; keeping the configured buffer budget", "err", err)
		s.bufferMaxBytes, s.commandsMaxBytes = s.cfg.BufferMaxBytes, commandStreamMaxBytes
		return nil
	}
	b, err := fitBudgets(s.cfg.BufferMaxBytes, room)
	if err != nil {
		return err
	}
	if b.buffer < s.cfg.BufferMaxBytes {
		s.log.Warn("buffer budget reduced to fit the filesystem", "configured_bytes", s.cfg.BufferMaxBytes,
			"budget_bytes", b.buffer, "disk_free_bytes", free, "data_dir", s.cfg.DataDir)
	}
	s.bufferMaxBytes, s.commandsMaxBytes, s.measured = b.buffer, b.commands, true
	return nil
}

// refitLoop refits the buffer's budget to the filesystem every
// BudgetRefitInterval until ctx ends. The COMMANDS stream keeps the budget
// fitted at start: the buffer's rule counts it in full.
func (s *Server) refitLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.BudgetRefitInterval)
	defer t.Stop()
	failing := false // log a run of failures once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.refitBudget(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failing = false
		case !failing:
			failing = true
			s.log.Warn("cannot refit the buffer budget to the filesystem", "err", err, "data_dir", s.cfg.DataDir)
		}
	}
}

// refitBudget measures the room on the data dir's filesystem and, if the
// buffer's budget should change (refitBuffer), updates the buffer stream's
// MaxBytes. A publish that lands between reading the stream's bytes and
// the update can leave the stream holding a little more than its new
// MaxBytes: nats-server 2.15.2 keeps such bytes in a stream that discards
// new messages (filestore.go enforceBytesLimit), and refuses new ones.
func (s *Server) refitBudget(ctx context.Context) error {
	free, room, err := s.measureRoom(s.cfg.DataDir)
	if err != nil {
		return err
	}
	if s.reserve != nil && !s.reserve.held() && free >= 2*reserveBytes {
		// Space came back after the reserve was used: make it again, and
		// fit the budget to what is left.
		if err := s.reserve.ensure(); err == nil {
			if free, room, err = s.measureRoom(s.cfg.DataDir); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, refitTimeout)
	defer cancel()
	info, err := s.up.BufferInfo(ctx)
	if err != nil {
		return err
	}
	cur, held := info.Config.MaxBytes, int64(info.State.Bytes)
	r := refitBuffer(bufferFit{
		configured: s.cfg.BufferMaxBytes, commands: s.commandsMaxBytes,
		current: cur, held: held, room: room,
		dropOldest: s.cfg.BufferFull == BufferDropOldest,
	})
	if !r.change {
		return nil
	}
	if err := s.up.SetBudget(ctx, r.budget); err != nil {
		return err
	}
	attrs := []any{"configured_bytes", s.cfg.BufferMaxBytes, "old_budget_bytes", cur, "budget_bytes", r.budget,
		"backlog_bytes", held, "disk_free_bytes", free, "data_dir", s.cfg.DataDir}
	if r.budget > cur {
		s.log.Info("buffer budget raised: the filesystem has room again", attrs...)
		return nil
	}
	attrs = append(attrs, "when_full", s.cfg.BufferFull, "held_at_backlog", r.heldBack)
	if r.tooSmall {
		attrs = append(attrs, "below_minimum_bytes", int64(minBufferBytes))
	}
	if dropped := held - r.budget; dropped > 0 && s.cfg.BufferFull == BufferDropOldest {
		attrs = append(attrs, "dropped_oldest_bytes", dropped)
	}
	s.log.Warn("buffer budget cut to fit the filesystem", attrs...)
	return nil
}
