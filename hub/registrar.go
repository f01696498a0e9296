package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
)

// The registrar answers enrollment requests. Every hub runs one, connected
// as the CLOUD user and subscribed in a queue group to $TETHER.ENROLL.*, so
// one hub answers each request. An edge account maps its local
// $TETHER.ENROLL to $TETHER.ENROLL.<edge> and shares the requestor's
// identity: the edge name in the subject and the account and user in the
// Nats-Request-Info header are set by the hubs, not by the device.
const (
	// EnrollBucket is the CLOUD key-value bucket that makes tokens single
	// use: one key per enroll user that obtained a leaf user.
	EnrollBucket = "TETHER_ENROLL"
	// enrollQueue is the registrar's queue group.
	enrollQueue = "tether-registrar"
	// enrollTimeout bounds the handling of one request.
	enrollTimeout = 5 * time.Second
)

// ErrTokenUsed is the registrar's answer to a token presented twice.
var ErrTokenUsed = errors.New(contract.EnrollTokenUsed)

type registrar struct {
	store *accounts.Store
	kv    jetstream.KeyValue
	log   *slog.Logger
}

// enrollRecord is what the bucket remembers about a used token.
type enrollRecord struct {
	Edge string    `json:"edge"`
	User string    `json:"user"`
	At   time.Time `json:"at"`
	Hub  string    `json:"hub"`
}

func enrollBucketConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      EnrollBucket,
		Description: "Tether: enrollment tokens already used (single use)",
		History:     1,
		// Longer than any token lives: a used token stays refused until
		// the hubs refuse its expired user anyway.
		TTL:      contract.MaxEnrollTTL + 24*time.Hour,
		Storage:  jetstream.FileStorage,
		Replicas: telemetryConfig(c).Replicas,
	}
}

// startRegistrar creates the bucket and starts answering requests until
// ctx ends. The store is read at request time, so edges added after the
// hub started can enroll.
func (s *Server) startRegistrar(ctx context.Context, store *accounts.Store) error {
	nc, js, err := s.cloudJetStream(ctx, store.CloudCredsFile(), "tether-registrar")
	if err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	var kv jetstream.KeyValue
	err = cloudjs.Retry(ctx, func(ctx context.Context) error {
		kv, err = js.CreateOrUpdateKeyValue(ctx, enrollBucketConfig(s.cfg))
		return err
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("registrar: bucket %s: %w", EnrollBucket, err)
	}
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanQueueSubscribe(contract.CloudEnrollAll, enrollQueue, msgs)
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return fmt.Errorf("registrar: subscribe %s: %w", contract.CloudEnrollAll, err)
	}
	r := &registrar{store: store, kv: kv, log: s.log.With("component", "registrar")}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer nc.Close()
		defer sub.Unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				r.handle(ctx, m)
			}
		}
	}()
	s.log.Info("registrar ready", "subject", contract.CloudEnrollAll, "bucket", EnrollBucket)
	return nil
}

// handle answers one request and logs the outcome (the audit trail).
func (r *registrar) handle(ctx context.Context, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, enrollTimeout)
	defer cancel()
	edge := strings.TrimPrefix(m.Subject, contract.EnrollSubject+".")
	var req contract.EnrollRequest
	ujwt, enrollUser, err := r.enroll(ctx, edge, m, &req)
	attrs := []any{"edge", edge, "enroll_user", enrollUser, "user", req.User}
	var reply contract.EnrollReply
	if err != nil {
		reply.Error = err.Error()
		r.log.Warn("enrollment refused", append(attrs, "reason", err.Error())...)
	} else {
		reply.JWT = ujwt
		r.log.Info("enrollment accepted", attrs...)
	}
	data, _ := json.Marshal(reply)
	if err := m.Respond(data); err != nil {
		r.log.Warn("enrollment reply not sent", append(attrs, "err", err)...)
	}
}

// enroll checks a request and, when it is good, marks the token used and
// returns the new leaf user's JWT. It returns the enroll user's key for
// the audit log, as far as it is known.
func (r *registrar) enroll(ctx context.Context, edge string, m *nats.Msg, req *contract.EnrollRequest) (string, string, error) {
	if err := contract.ValidateEdgeName(edge); err != nil {
		return "", "", err
	}
	var ci server.ClientInfo
	if h := m.Header.Get(server.ClientInfoHdr); h == "" || json.Unmarshal([]byte(h), &ci) != nil || ci.Account == "" || ci.User == "" {
		return "", "", errors.New("no requestor identity: requests must come through an edge account's $TETHER.ENROLL import")
	}
	e, err := r.store.Edge(edge)
	if err != nil {
		return "", ci.User, err
	}
	if at, revoked := r.store.Revoked(edge); revoked {
		return "", ci.User, fmt.Errorf("edge %s: %w (since %s)", edge, accounts.ErrEdgeRevoked, at.Format(time.RFC3339))
	}
	if ci.Account != e.Account.Pub {
		return "", ci.User, fmt.Errorf("request from account %s, not from edge %s's account", ci.Account, edge)
	}
	if err := json.Unmarshal(m.Data, req); err != nil {
		return "", ci.User, fmt.Errorf("malformed enrollment request: %w", err)
	}
	if req.Edge != edge {
		return "", ci.User, fmt.Errorf("the token is for edge %q but was used on edge %s", req.Edge, edge)
	}
	uc, err := r.checkEnrollUser(e, req.EnrollJWT, ci.User)
	if err != nil {
		return "", ci.User, err
	}
	if err := req.Verify(edge, uc.Subject); err != nil {
		return "", uc.Subject, err
	}
	rec, _ := json.Marshal(enrollRecord{Edge: edge, User: req.User, At: time.Now().UTC(), Hub: ci.Server})
	_, err = r.kv.Create(ctx, uc.Subject, rec)
	created := err == nil
	if errors.Is(err, jetstream.ErrKeyExists) {
		// The same device asking again with the same key (its first
		// answer was lost with the link) gets its user again; any other
		// key is refused.
		if prev, gerr := r.kv.Get(ctx, uc.Subject); gerr != nil || !sameUser(prev.Value(), req.User) {
			return "", uc.Subject, ErrTokenUsed
		}
		r.log.Info("enrollment repeated for the same key", "edge", edge, "enroll_user", uc.Subject, "user", req.User)
	} else if err != nil {
		return "", uc.Subject, fmt.Errorf("registrar cannot record the token's use, try again: %w", err)
	}
	ujwt, err := r.store.SignLeafUser(edge, req.User, time.Time{})
	if err != nil {
		if created { // give the token back: nothing was issued
			_ = r.kv.Delete(context.WithoutCancel(ctx), uc.Subject)
		}
		return "", uc.Subject, fmt.Errorf("registrar cannot sign a leaf user, try again: %w", err)
	}
	if err := r.store.RecordLeafUser(edge, ujwt); err != nil {
		// The JWT is valid without the record; the store may be a
		// read-only mount on this hub.
		r.log.Warn("enrolled leaf user not recorded in the store", "edge", edge, "user", req.User, "err", err)
	}
	return ujwt, uc.Subject, nil
}

// sameUser reports whether a bucket record was made for user.
func sameUser(record []byte, user string) bool {
	var rec enrollRecord
	return json.Unmarshal(record, &rec) == nil && rec.User == user
}

// checkEnrollUser checks the token's enroll user JWT against the edge's
// current account JWT: issued for it by its (unscoped) signing key, not
// expired, not revoked, and the user the hub says is asking.
func (r *registrar) checkEnrollUser(e *accounts.Edge, enrollJWT, requestor string) (*jwt.UserClaims, error) {
	uc, err := jwt.DecodeUserClaims(enrollJWT)
	if err != nil {
		return nil, fmt.Errorf("enroll user JWT: %w", err)
	}
	if uc.Subject != requestor {
		return nil, fmt.Errorf("enroll user JWT is for %s, but %s is asking", uc.Subject, requestor)
	}
	ac, err := jwt.DecodeAccountClaims(e.Account.JWT)
	if err != nil {
		return nil, err
	}
	if scope, listed := ac.SigningKeys.GetScope(uc.Issuer); uc.IssuerAccount != ac.Subject || !listed || scope != nil {
		return nil, fmt.Errorf("enroll user JWT not issued by edge %s's account", e.Name)
	}
	if uc.Expires == 0 || time.Now().Unix() >= uc.Expires {
		return nil, fmt.Errorf("%w (at %s)", sitefile.ErrTokenExpired, time.Unix(uc.Expires, 0).UTC().Format(time.RFC3339))
	}
	if ac.IsClaimRevoked(uc) {
		return nil, fmt.Errorf("enrollment token revoked")
	}
	return uc, nil
}
