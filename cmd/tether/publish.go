package main

import (
	"errors"
	"fmt"
	"io"
	"time"

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

// refusals catches the server's refusal of a publish or subscription (a
// permissions violation, which nats.go reports asynchronously) so that a
// command fails at once with it instead of waiting for a timeout.
type refusals chan error

func newRefusals() refusals { return make(refusals, 1) }

// handler is the connection's error handler: refusals go to r, any other
// asynchronous error to stderr.
func (r refusals) handler(stderr io.Writer) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case r <- err:
			default:
			}
			return
		}
		fmt.Fprintf(stderr, "tether: %v\n", err)
	})
}

// request sends m and waits for its answer, or for the server's refusal
// (returned apart from any other error, for the caller to explain).
func (r refusals) request(nc *nats.Conn, m *nats.Msg, timeout time.Duration) (resp *nats.Msg, refusal, err error) {
	type answer struct {
		msg *nats.Msg
		err error
	}
	done := make(chan answer, 1)
	go func() {
		a, err := nc.RequestMsg(m, timeout)
		done <- answer{a, err}
	}()
	select {
	case refusal := <-r:
		return nil, refusal, nil
	case a := <-done:
		return a.msg, nil, a.err
	}
}
