package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-fabric/tether/contract"
)

// highWaterWait bounds the question to the cloud at the start of a
// session; an unanswered question only costs the skip, not correctness
// within the duplicate window.
const highWaterWait = 2 * time.Second

// skipHeld asks the cloud how far this edge's telemetry got and purges
// from the buffer what the cloud already holds of this buffer's
// incarnation (origin). That covers a batch the cloud stored whose
// PubAcks were lost and that is resent after the stream's duplicate
// window, when dedup by message id no longer catches it. The cloud holds a
// prefix of the buffer's sequence: the forwarder never lets a message
// overtake an unconfirmed one. It returns the first sequence still to send.
func (u *Forwarder) skipHeld(ctx context.Context, first, last uint64) uint64 {
	if u.gapRisk.Load() {
		return first // the cloud may hold later messages but not an earlier one
	}
	ctx, cancel := context.WithTimeout(ctx, highWaterWait)
	defer cancel()
	m, err := u.nc.RequestWithContext(ctx, contract.UplinkHighWater, nil)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			u.logger().Debug("cloud high-water mark not available; relying on the duplicate window", "err", err)
		}
		return first
	}
	var hw contract.HighWater
	if err := json.Unmarshal(m.Data, &hw); err != nil || hw.Error != "" {
		u.logger().Warn("cloud high-water mark unreadable; relying on the duplicate window", "err", err, "cloud_error", hw.Error)
		return first
	}
	start, upTo, purge := highWaterSkip(hw, u.origin, first, last, u.gapRisk.Load())
	if !purge {
		return start
	}
	if err := u.confirm(ctx, upTo, int(upTo-first+1)); err != nil {
		u.logger().Warn("could not drop what the cloud already holds", "err", err)
		return first
	}
	u.logger().Info("cloud already holds part of the backlog; not sending it again",
		"from_seq", first, "to_seq", upTo, "messages", upTo-first+1)
	return start
}

func (u *Forwarder) logger() *slog.Logger {
	if u.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.log
}

// gapRiskFile marks, across restarts, that a per-message session may have
// left a gap in the cloud (see session).
const gapRiskFile = "uplink-gap-risk" // the name predates package forwarder; kept for existing data dirs

// setGapRisk records whether the cloud may hold a message of this buffer
// without every earlier one; it is kept in the data dir so a restart after
// a crash does not forget it.
func (u *Forwarder) setGapRisk(risk bool) {
	if u.gapRisk.Swap(risk) == risk {
		return
	}
	path := filepath.Join(u.dataDir, gapRiskFile)
	var err error
	if risk {
		err = os.WriteFile(path, nil, 0o600)
	} else {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		u.logger().Warn("cannot record the gap-risk marker", "path", path, "err", err)
	}
}

// loadGapRisk reads the marker at start.
func (u *Forwarder) loadGapRisk() {
	_, err := os.Stat(filepath.Join(u.dataDir, gapRiskFile))
	u.gapRisk.Store(err == nil)
}
