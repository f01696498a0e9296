package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tether-fabric/tether/fleet"

	"github.com/tether-fabric/tether/accounts"
)

// pushPolicy pushes every account JWT of accs to every hub reachable
// through url and to every hub an earlier push met (a hub that does not
// answer now is missing), and reports each hub's answer. It returns an
// error naming what not every hub took.
func pushPolicy(ctx context.Context, d *deps, s *accounts.Store, url string, accs []accounts.Account, timeout time.Duration) error {
	nc, err := fleet.ConnectSystem(s, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found, err := fleet.Hubs(ctx, nc, 250*time.Millisecond)
	if err != nil {
		return fmt.Errorf("find hubs: %w", err)
	}
	if len(found) == 0 {
		return fmt.Errorf("no hub answered at %s", url)
	}
	known, err := s.KnownHubs()
	if err != nil {
		return err
	}
	var missing []string
	for _, h := range known {
		if !contains(found, h) {
			missing = append(missing, h)
		}
	}
	if err := s.RecordHubs(found); err != nil {
		return err
	}
	took := map[string]int{}
	var failed []string
	var mu sync.Mutex
	var firstErr error
	work := make(chan accounts.Account)
	var wg sync.WaitGroup
	// A few pushes in flight: each waits for every hub's answer, and a
	// fleet's apply may change thousands of accounts.
	for range pushWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for acc := range work {
				res, err := fleet.Push(ctx, nc, acc.JWT, found)
				mu.Lock()
				if err != nil && !errors.Is(err, fleet.ErrPushIncomplete) && firstErr == nil {
					firstErr = fmt.Errorf("push %s: %w", acc.Name, err)
				}
				for _, r := range res {
					if r.OK {
						took[r.Hub]++
					} else {
						failed = append(failed, fmt.Sprintf("%s to %s: %s", acc.Name, r.Hub, r.Message))
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, acc := range accs {
		work <- acc
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	sort.Strings(failed)
	for _, h := range found {
		fmt.Fprintf(d.stdout, "hub %s: took %d of %d account JWT(s)\n", h, took[h], len(accs))
	}
	for _, h := range missing {
		fmt.Fprintf(d.stdout, "hub %s: MISSING (it answered an earlier push, not this one): took none\n", h)
		failed = append(failed, fmt.Sprintf("every account to %s: the hub did not answer", h))
	}
	for _, f := range failed {
		fmt.Fprintf(d.stdout, "  not taken: %s\n", f)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %d push(es) not taken (%s)", fleet.ErrPushIncomplete, len(failed), strings.Join(firstN(failed, 3), "; "))
	}
	return nil
}

// pushWorkers is how many account JWTs a policy push has in flight.
const pushWorkers = 8

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstN(l []string, n int) []string {
	if len(l) > n {
		return append(l[:n:n], fmt.Sprintf("and %d more", len(l)-n))
	}
	return l
}
