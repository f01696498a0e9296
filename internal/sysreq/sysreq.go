// Package sysreq sends a request to every server of a NATS system (for
// example a $SYS.REQ subject) and gathers the answers.
package sysreq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Gather publishes a request and hands every reply to fn until want replies
// arrived (want > 0), quiet passed without a reply (quiet > 0), or ctx ends.
func Gather(ctx context.Context, nc *nats.Conn, subj string, data []byte, quiet time.Duration, want int, fn func([]byte)) error {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, inbox, data); err != nil {
		return fmt.Errorf("publish %s: %w", subj, err)
	}
	for n := 0; want == 0 || n < want; n++ {
		wait := time.Hour
		if d, ok := ctx.Deadline(); ok {
			wait = time.Until(d)
		}
		if quiet > 0 && n > 0 && quiet < wait {
			wait = quiet
		}
		if wait <= 0 {
			return ctx.Err()
		}
		m, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) {
			if quiet > 0 && n > 0 {
				return nil
			}
			return context.DeadlineExceeded
		}
		if err != nil {
			return fmt.Errorf("%s: %w", subj, err)
		}
		fn(m.Data)
	}
	return nil
}
