// Package natslog adapts nats-server's logger interface to log/slog.
//
// Invariant: Fatalf logs at error level and never exits the process; the
// binary, not the embedded server, decides when to stop.
package natslog

import (
	"context"
	"fmt"
	"log/slog"
)

// Logger implements server.Logger on top of a *slog.Logger.
type Logger struct {
	L *slog.Logger
	// Observe, if set, sees the format string of every message, whatever
	// the level (cheap: nothing is formatted for it), so a caller can
	// notice events the server only reports at debug level.
	Observe func(format string)
}

// New returns an adapter that logs through l.
func New(l *slog.Logger) *Logger { return &Logger{L: l} }

// serverKey marks a log call's context as the embedded server's.
type serverKey struct{}

// FromServer reports whether ctx is that of a record logged by the
// embedded server through a Logger, so a slog.Handler can treat the
// server's own chatter apart from the program's lines ('tether dev' shows
// it at debug level only).
func FromServer(ctx context.Context) bool {
	v, _ := ctx.Value(serverKey{}).(bool)
	return v
}

func (a *Logger) log(level slog.Level, format string, v ...any) {
	if a.Observe != nil {
		a.Observe(format)
	}
	ctx := context.WithValue(context.Background(), serverKey{}, true)
	if !a.L.Enabled(ctx, level) {
		return
	}
	a.L.Log(ctx, level, fmt.Sprintf(format, v...))
}

// Noticef logs at info level.
func (a *Logger) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v...) }

// Warnf logs at warn level.
func (a *Logger) Warnf(format string, v ...any) { a.log(slog.LevelWarn, format, v...) }

// Fatalf logs at error level; it does not exit.
func (a *Logger) Fatalf(format string, v ...any) { a.log(slog.LevelError, format, v...) }

// Errorf logs at error level.
func (a *Logger) Errorf(format string, v ...any) { a.log(slog.LevelError, format, v...) }

// Debugf logs at debug level.
func (a *Logger) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v...) }

// Tracef logs below debug level.
func (a *Logger) Tracef(format string, v ...any) { a.log(slog.LevelDebug-4, format, v...) }
