package main

import (
	"context"
	"log/slog"

	"github.com/tether-fabric/tether/internal/natslog"
)

// quietServers is a slog.Handler for the commands that run embedded
// nats-servers ('tether dev', 'tether hub', 'tether leaf', enrollment): the servers'
// own lines below warning level (banners, ASCII art, notices) are logged
// at debug level, so by default the terminal shows Tether's lifecycle
// lines and every warning and error, the servers' included;
// --log-level debug shows the servers' chatter too.
type quietServers struct{ slog.Handler }

// serverLogger is d.logger() with the embedded servers' notices demoted
// to debug level (quietServers).
func (d *deps) serverLogger() *slog.Logger {
	return slog.New(quietServers{d.logger().Handler()})
}

func (q quietServers) demote(ctx context.Context, level slog.Level) slog.Level {
	if level < slog.LevelWarn && natslog.FromServer(ctx) {
		return min(level, slog.LevelDebug)
	}
	return level
}

func (q quietServers) Enabled(ctx context.Context, level slog.Level) bool {
	return q.Handler.Enabled(ctx, q.demote(ctx, level))
}

func (q quietServers) Handle(ctx context.Context, r slog.Record) error {
	r.Level = q.demote(ctx, r.Level)
	return q.Handler.Handle(ctx, r)
}

func (q quietServers) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietServers{q.Handler.WithAttrs(attrs)}
}

func (q quietServers) WithGroup(name string) slog.Handler {
	return quietServers{q.Handler.WithGroup(name)}
}
