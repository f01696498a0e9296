package main

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// publishConfirmed publishes and waits for the server's verdict. A refused
// publish reaches the client as an asynchronous -ERR that the server sends
// before the PONG answering the flush's PING, so once Flush returns the
// connection's last error holds the refusal, if any.
func publishConfirmed(nc *nats.Conn, subject string, data []byte) error {
	if err := nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	if err := nc.LastError(); err != nil {
		if errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("publish %s: refused by the server (this user may not publish on this subject): %w", subject, err)
		}
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}
