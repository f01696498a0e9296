package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// checkPublishSubject refuses what a publisher cannot mean: a subject with
// a wildcard token (* or >) or an empty token would be published and stored
// literally (edges.plant-7.telemetry.* in the cloud stream).
func checkPublishSubject(subject string) error {
	if subject == "" {
		return errors.New("subject is empty: want a subject such as telemetry.temp")
	}
	for _, tok := range strings.Split(subject, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token (a leading, trailing or doubled dot): want tokens separated by single dots", subject)
		case tok == "*" || tok == ">":
			return fmt.Errorf("subject %q has the wildcard %q: publish to a literal subject (wildcards are for 'tether sub')", subject, tok)
		case strings.ContainsAny(tok, " \t\r\n"):
			return fmt.Errorf("subject %q contains white space", subject)
		}
	}
	return nil
}

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
