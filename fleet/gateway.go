package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/policy"
)

// GatewayDelivery is what became of one edge's gateway configuration.
type GatewayDelivery struct {
	Edge string `json:"edge"`
	// Applied: the edge was linked and applied it now.
	Applied bool     `json:"applied"`
	Exposed []string `json:"exposed,omitempty"`
	Grants  int      `json:"grants"`
	// Pending: the edge is not linked (or has no account in the store
	// yet: NoAccount); it gets the configuration from the cloud bucket
	// when its link comes up.
	Pending   bool `json:"pending"`
	NoAccount bool `json:"no_account,omitempty"`
	// Error is an edge's refusal or a failed push (the bucket has it).
	Error string `json:"error,omitempty"`
}

// gatewayPushWorkers is how many edges a delivery pushes to at once.
const gatewayPushWorkers = 8

// DeliverGateways writes every edge's gateway configuration of gws into
// the CLOUD bucket contract.GatewayBucket through the cloud connection and
// pushes those whose value changed to their edges over their own links (a
// control user of each edge's account, at url). It returns one delivery
// per changed edge, sorted: applied, pending (not linked: it fetches its
// configuration when it links) or refused. An edge whose value did not
// change is left alone (it has it, or fetches it when it links). version
// is the applied policy version gws belong to (0: unknown); an older one
// than the bucket holds is refused (cloudjs.ErrStaleGateways).
func DeliverGateways(ctx context.Context, s *accounts.Store, cloud *nats.Conn, url string, gws []policy.Gateway, version int) ([]GatewayDelivery, error) {
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, contract.GatewayBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// Hubs older than the bucket: create it (the hubs keep it after).
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: contract.GatewayBucket, History: 1, Storage: jetstream.FileStorage})
	}
	if err != nil {
		return nil, fmt.Errorf("gateway bucket %s: %w", contract.GatewayBucket, err)
	}
	changed, err := cloudjs.PutGateways(ctx, kv, gws, version)
	if err != nil {
		return nil, err
	}
	put := time.Now()
	out := make([]GatewayDelivery, len(changed))
	// Only linked edges are pushed to (a push is a connection as the
	// edge's control user: thousands of edges that are not linked cost
	// minutes to learn that); the others fetch their configuration from
	// the bucket when their link comes up. The hubs record every link in
	// contract.LinksBucket within a second of its coming up: an edge
	// that linked while the bucket was written, before its record, may
	// have fetched the older value, so the records are read again
	// linkRecordDelay after the put and those edges are pushed to then.
	// Without the records (older hubs), every changed edge is pushed to.
	linked, known := linkedAccounts(ctx, js)
	accs := make([]string, len(changed))
	var now, later []int
	for i, c := range changed {
		if e, err := s.Edge(c.Edge); err == nil {
			accs[i] = e.Account.Pub
		}
		if !known || accs[i] == "" || linked[accs[i]] {
			now = append(now, i) // a changed edge without account is reported by pushGateway
		} else {
			out[i] = GatewayDelivery{Edge: c.Edge, Pending: true}
			later = append(later, i)
		}
	}
	push := func(idx []int) {
		work := make(chan int)
		var wg sync.WaitGroup
		for range min(gatewayPushWorkers, len(idx)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					out[i] = pushGateway(ctx, s, url, changed[i].Edge, changed[i].Data, changed[i].Rev)
				}
			}()
		}
		for _, i := range idx {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	push(now)
	if len(later) > 0 {
		select {
		case <-time.After(time.Until(put.Add(linkRecordDelay))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		again, _ := linkedAccounts(ctx, js)
		var idx []int
		for _, i := range later {
			if again[accs[i]] {
				idx = append(idx, i)
			}
		}
		push(idx)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Edge < out[j].Edge })
	return out, nil
}

// linkRecordDelay bounds how long after a link comes up the hubs have
// recorded it in contract.LinksBucket (they look every 100 ms; up to a
// second while the server has not reported a closed link).
const linkRecordDelay = 2 * time.Second

// linkedAccounts returns the edge accounts the hubs record a link for,
// and whether the record could be read.
func linkedAccounts(ctx context.Context, js jetstream.JetStream) (map[string]bool, bool) {
	kv, err := js.KeyValue(ctx, contract.LinksBucket)
	if err != nil {
		return nil, false
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, false
	}
	out := map[string]bool{}
	for k := range keys.Keys() {
		out[k] = true
	}
	return out, true
}

// pushGateway hands one linked edge its configuration, of bucket
// revision rev.
func pushGateway(ctx context.Context, s *accounts.Store, url, edge string, data []byte, rev uint64) GatewayDelivery {
	d := GatewayDelivery{Edge: edge}
	if _, err := s.Edge(edge); errors.Is(err, accounts.ErrNoEdge) {
		d.Pending, d.NoAccount = true, true
		return d
	}
	nc, err := ConnectControl(s, url, edge)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: contract.GatewayControlSubject, Data: data, Header: nats.Header{}}
	msg.Header.Set(contract.HeaderGatewayRevision, strconv.FormatUint(rev, 10))
	resp, err := nc.RequestMsgWithContext(rctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		d.Pending = true
		return d
	case err != nil:
		d.Error = fmt.Sprintf("push: %v (the edge fetches it when its link comes up again)", err)
		return d
	}
	var r contract.GatewayPushReply
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		d.Error = fmt.Sprintf("bad answer: %v", err)
		return d
	}
	d.Applied, d.Exposed, d.Grants, d.Error = r.Applied, r.Exposed, r.Grants, r.Error
	return d
}

// ApplyGroupStreams makes the CLOUD group telemetry streams what groups
// says (cloudjs.ApplyGroupStreams) through the cloud connection.
func ApplyGroupStreams(ctx context.Context, cloud *nats.Conn, groups []policy.GroupStream) ([]cloudjs.GroupStreamChange, error) {
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		return nil, err
	}
	return cloudjs.ApplyGroupStreams(ctx, js, groups)
}
