//go:build bench

package leaf

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchForwarder runs Tether's forwarder alone over nc, a connection to
// any edge nats-server with JetStream whose link carries tether.up.> to a
// stream that allows fast batches: it creates the buffer stream
// (BufferStream on telemetry.>, budget maxBytes) and forwards it until ctx
// ends, while linked reports the link up. Compiled only with the bench tag:
// test/bench uses it to measure the forwarder's design without Tether's
// accounts (no service import on the hub).
func BenchForwarder(ctx context.Context, edge string, nc *nats.Conn, dataDir string, maxBytes int64, linked func() bool, log *slog.Logger) error {
	c := Config{DataDir: dataDir, StallAfter: 15 * time.Second, BufferFull: BufferReject}
	u, err := startUplink(ctx, edge, nc, nc, c, maxBytes, linked)
	if err != nil {
		return err
	}
	u.log = log
	go u.run(ctx)
	return nil
}
