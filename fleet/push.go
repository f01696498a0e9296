package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/internal/sysreq"
)

// ErrPushIncomplete reports a push that not every hub acknowledged.
var ErrPushIncomplete = errors.New("not every hub acknowledged the update")

// PushResult is one hub's answer to a JWT update.
type PushResult struct {
	Hub     string `json:"hub"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

type claimUpdateResponse struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Data *struct {
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// Hubs asks every hub reachable through nc (a system-account connection)
// for its name. It gathers answers until quiet passes without a new one or
// ctx ends.
func Hubs(ctx context.Context, nc *nats.Conn, quiet time.Duration) ([]string, error) {
	var names []string
	err := sysreq.Gather(ctx, nc, "$SYS.REQ.SERVER.PING", nil, quiet, 0, func(data []byte) {
		var r struct {
			Server struct {
				Name string `json:"name"`
			} `json:"server"`
		}
		if json.Unmarshal(data, &r) == nil && r.Server.Name != "" {
			names = append(names, r.Server.Name)
		}
	})
	sort.Strings(names)
	return names, err
}

// Push sends an account JWT to every hub's resolver through nc (a
// system-account connection) and collects each answer. It waits for the
// named hubs until ctx ends; hubs that did not answer are returned with
// OK false, and the error wraps ErrPushIncomplete. They converge later
// through the resolvers' own synchronisation.
func Push(ctx context.Context, nc *nats.Conn, accountJWT string, hubs []string) ([]PushResult, error) {
	return askHubs(ctx, nc, "$SYS.REQ.CLAIMS.UPDATE", []byte(accountJWT), hubs)
}

// askHubs sends a resolver request (claims update or delete) to every hub
// through nc and collects each hub's answer, waiting for the named hubs
// until ctx ends; hubs that did not answer or refused are named in the
// error, which wraps ErrPushIncomplete.
func askHubs(ctx context.Context, nc *nats.Conn, subject string, payload []byte, hubs []string) ([]PushResult, error) {
	got := map[string]PushResult{}
	err := sysreq.Gather(ctx, nc, subject, payload, 0, len(hubs), func(data []byte) {
		var r claimUpdateResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		res := PushResult{Hub: r.Server.Name, OK: r.Error == nil}
		switch {
		case r.Error != nil:
			res.Message = r.Error.Description
		case r.Data != nil:
			res.Message = r.Data.Message
		}
		got[res.Hub] = res
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	var out []PushResult
	var missing, failed []string
	for _, h := range hubs {
		r, ok := got[h]
		if !ok {
			r = PushResult{Hub: h, Message: "no answer"}
			missing = append(missing, h)
		} else if !r.OK {
			failed = append(failed, h+": "+r.Message)
		}
		out = append(out, r)
		delete(got, h)
	}
	for _, r := range got { // hubs that answered but were not expected
		out = append(out, r)
	}
	if len(missing) > 0 || len(failed) > 0 {
		return out, fmt.Errorf("%w: no answer from %v, refused by %v", ErrPushIncomplete, missing, failed)
	}
	return out, nil
}

// ConnectSystem connects to a hub as the store's system user, verifying
// the hub against the store's CA.
func ConnectSystem(s *accounts.Store, url string, opts ...nats.Option) (*nats.Conn, error) {
	return connect(s, url, s.SystemCredsFile(), "system", opts)
}

// ConnectCloud connects to a hub as the store's cloud user, verifying the
// hub against the store's CA.
func ConnectCloud(s *accounts.Store, url string, opts ...nats.Option) (*nats.Conn, error) {
	return connect(s, url, s.CloudCredsFile(), "cloud", opts)
}

func connect(s *accounts.Store, url, creds, who string, opts []nats.Option) (*nats.Conn, error) {
	user, err := UserOptions(creds)
	if err != nil {
		return nil, fmt.Errorf("connect to hub %s as %s user: %w", url, who, err)
	}
	base := append([]nats.Option{
		nats.Name("tether-admin"),
		nats.RootCAs(s.CAFile()),
		nats.Timeout(5 * time.Second),
	}, user...)
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to hub %s as %s user: %w", url, who, err)
	}
	return nc, nil
}

// PushAccount pushes the store s's named account's JWT to every hub that answers a
// ping through nc within ctx.
func PushAccount(ctx context.Context, s *accounts.Store, nc *nats.Conn, name string) ([]PushResult, error) {
	acc, err := s.Account(name)
	if err != nil {
		return nil, err
	}
	return askEveryHub(ctx, nc, "$SYS.REQ.CLAIMS.UPDATE", []byte(acc.JWT), "push "+name)
}

// DeleteResult is one hub's answer to an account deletion.
type DeleteResult = PushResult

// DeleteAccount asks every hub's resolver, through nc (a system
// connection), to delete the account pub, with a request signed by the
// store's operator signing key; hubs that did not answer are named in the
// error, as for Push.
func DeleteAccount(ctx context.Context, s *accounts.Store, nc *nats.Conn, pub string) ([]DeleteResult, error) {
	req, err := s.SignAccountDeletion(pub)
	if err != nil {
		return nil, err
	}
	return askEveryHub(ctx, nc, "$SYS.REQ.CLAIMS.DELETE", []byte(req), "delete account "+pub)
}

// askEveryHub finds the hubs that answer a ping through nc and asks each
// of them subject with payload; what names the step in errors.
func askEveryHub(ctx context.Context, nc *nats.Conn, subject string, payload []byte, what string) ([]PushResult, error) {
	hubs, err := Hubs(ctx, nc, 250*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("%s: find hubs: %w", what, err)
	}
	if len(hubs) == 0 {
		return nil, fmt.Errorf("%s: no hub answered", what)
	}
	return askHubs(ctx, nc, subject, payload, hubs)
}
