package hub

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/cloudjs"
)

// usedTokens is this hub's view of the registrar's bucket EnrollBucket:
// the enroll users whose token obtained a leaf user, on any hub. A watch
// keeps it current, so a token used through another hub is known here
// within the bucket's replication.
//
// Why not revoke them: nats-server refuses a user at authentication only
// when its account JWT revokes it or it has expired, and a new account
// JWT must be signed by the operator's signing key, which a hub does not
// hold (accounts.Store.ExportHub). The hubs instead close a used token's
// links (links.go): such a link may only ask the registrar, which says
// "already used", and never holds its edge's link.
type usedTokens struct {
	mu    sync.Mutex
	users map[string]bool
	stop  func()
}

// watchUsedTokens creates the bucket if needed (as the registrar does) and
// watches it until ctx ends or stop is called.
func watchUsedTokens(ctx context.Context, js jetstream.JetStream, c Config) (*usedTokens, error) {
	wctx, cancel := context.WithCancel(ctx)
	var w jetstream.KeyWatcher
	err := cloudjs.Retry(ctx, func(actx context.Context) error {
		kv, err := js.CreateOrUpdateKeyValue(actx, enrollBucketConfig(c))
		if err != nil {
			return err
		}
		w, err = kv.WatchAll(wctx) // lives until stop, not for one attempt
		return err
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bucket %s: watch: %w", EnrollBucket, err)
	}
	u := &usedTokens{users: map[string]bool{}}
	done := make(chan struct{})
	u.stop = func() {
		cancel()
		_ = w.Stop()
		<-done
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue // the initial values are all in
				}
				u.mu.Lock()
				if e.Operation() == jetstream.KeyValuePut {
					u.users[e.Key()] = true
				} else {
					delete(u.users, e.Key()) // given back (registrar.enroll) or purged
				}
				u.mu.Unlock()
			}
		}
	}()
	return u, nil
}

// has reports whether enrollUser's token was used.
func (u *usedTokens) has(enrollUser string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.users[enrollUser]
}
