package leaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/natslog"
	"github.com/tether-fabric/tether/internal/pki"
)

// Enrollment errors on the device.
var (
	// ErrAlreadyEnrolled reports a device that already has its bundle.
	ErrAlreadyEnrolled = errors.New("already enrolled")
	// ErrEnrollRefused reports a token or request the hubs refused.
	ErrEnrollRefused = errors.New("enrollment refused")
)

// enrollRetry is how long the device waits before asking again when no
// registrar answered yet (the hub's interest may still be in flight right
// after the link came up).
const enrollRetry = 250 * time.Millisecond

// enrollWarnAfter is how often a device that is still not enrolled says so.
const enrollWarnAfter = 10 * time.Second

// Enroll turns an enrollment token into this device's bundle: it generates
// the edge's user key pair here, links to the hubs as the token's enroll
// user over the same leafnode (or WebSocket) connection normal operation
// uses, asks the registrar for a leaf user with proof that it holds both
// the new key and the token, and writes the bundle (the token's hubs and
// CA, the returned JWT and the new seed) to cfg.Bundle with mode 0600. It
// opens no listener. A device that already has a bundle is refused and
// nothing is written; so is an expired token, before anything is dialled.
func Enroll(ctx context.Context, cfg Config, tok *sitefile.EnrollToken, log *slog.Logger) (*sitefile.Bundle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("leaf config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := tok.Validate(); err != nil {
		return nil, fmt.Errorf("enroll edge %s: %w", tok.Edge, err)
	}
	log = log.With("edge", tok.Edge)
	if _, err := os.Lstat(cfg.Bundle); err == nil {
		return nil, fmt.Errorf("enroll edge %s: %w: bundle %s exists (remove it to enroll this device again)", tok.Edge, ErrAlreadyEnrolled, cfg.Bundle)
	}
	if tok.Expired(time.Now()) {
		return nil, fmt.Errorf("enroll edge %s: %w at %s (ask the operator for a new one: tether edge token %s)",
			tok.Edge, sitefile.ErrTokenExpired, tok.Expires.Format(time.RFC3339), tok.Edge)
	}
	// A token is used up once the registrar answers: make sure the bundle
	// can be written before asking.
	// Directories made for the bundle go again if enrolling fails: a
	// refused token leaves the device as it was.
	created, err := mkdirNew(filepath.Dir(cfg.Bundle))
	if err == nil {
		err = checkWritable(filepath.Dir(cfg.Bundle))
	}
	enrolled := false
	defer func() {
		if !enrolled {
			removeEmpty(created)
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("enroll edge %s: bundle %s: %w", tok.Edge, cfg.Bundle, err)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	req, err := tok.NewEnrollRequest(ukp)
	if err != nil {
		return nil, fmt.Errorf("enroll edge %s: token: %w", tok.Edge, err)
	}
	upub, _ := ukp.PublicKey()
	log.Info("enrolling", "user", upub, "token", tok)

	ujwt, err := requestLeafUser(ctx, cfg, tok, req, log)
	if err != nil {
		return nil, fmt.Errorf("enroll edge %s: %w", tok.Edge, err)
	}
	uc, err := jwt.DecodeUserClaims(ujwt)
	if err != nil || uc.Subject != upub || uc.IssuerAccount != tok.Account {
		return nil, fmt.Errorf("enroll edge %s: %w: the registrar's answer is not a user of account %s for key %s", tok.Edge, ErrEnrollRefused, tok.Account, upub)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		return nil, err
	}
	b, err := tok.Bundle(creds)
	if err != nil {
		return nil, fmt.Errorf("enroll edge %s: %w", tok.Edge, err)
	}
	if err := sitefile.WriteBundle(cfg.Bundle, b); err != nil {
		return nil, fmt.Errorf("enroll edge %s: %w", tok.Edge, err)
	}
	enrolled = true
	log.Info("enrolled", "user", upub, "bundle", cfg.Bundle)
	return b, nil
}

// mkdirNew creates dir (0700) and its missing parents, and returns the
// directories it created, deepest first.
func mkdirNew(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		missing = append(missing, d)
	}
	return missing, os.MkdirAll(dir, 0o700)
}

// removeEmpty removes the directories, deepest first, while they are
// empty.
func removeEmpty(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}

// checkWritable creates dir (0700) if needed and checks a file can be
// created in it.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tether-probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// requestLeafUser runs a listener-less leaf server with the token's enroll
// user, waits for the link and asks the registrar until it answers.
func requestLeafUser(ctx context.Context, cfg Config, tok *sitefile.EnrollToken, req *contract.EnrollRequest, log *slog.Logger) (string, error) {
	tkp, err := tok.KeyPair()
	if err != nil {
		return "", err
	}
	sign := func(nonce []byte) (string, []byte, error) {
		sig, err := tkp.Sign(nonce)
		return tok.JWT, sig, err
	}
	pool, err := pki.Pool([]byte(tok.CA))
	if err != nil {
		return "", fmt.Errorf("token: ca: %w", err)
	}
	b := &sitefile.Bundle{Edge: tok.Edge, Domain: tok.Domain, HubURLs: tok.HubURLs, WebsocketURLs: tok.WebsocketURLs}
	opts, err := buildOptions(cfg, b, sign, pki.ClientTLS(pool))
	if err != nil {
		return "", err
	}
	proxy, err := linkProxyFor(cfg, opts, os.Getenv, log)
	if err != nil {
		return "", err
	}
	proxy.apply(opts.LeafNode.Remotes[0])
	opts.ServerName = tok.Domain + "-enroll"
	opts.JetStream = false
	opts.JetStreamDomain = ""
	opts.DontListen = true
	ns, err := server.NewServer(opts)
	if err != nil {
		return "", err
	}
	refusals := &refusalLog{Logger: natslog.New(log), refused: make(chan string, 1)}
	ns.SetLoggerV2(refusals, log.Enabled(ctx, slog.LevelDebug), false, false)
	go ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(readyTimeout) {
		return "", errors.New("enrollment server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("tether-enroll"), nats.CustomInboxPrefix(contract.EnrollInbox))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	data, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	warnAt := time.Now().Add(enrollWarnAfter)
	for {
		wait := linkPoll / 2
		linked := ns.NumLeafNodes() > 0
		if time.Now().After(warnAt) {
			warnAt = time.Now().Add(enrollWarnAfter)
			hint := "no link to the hubs yet: check the hub URLs, the network and the CA"
			if linked {
				hint = "linked, but no registrar answers: do the hubs run this version, and do they know the edge's account (edge add --push)?"
			}
			log.Warn("still enrolling", "linked", linked, "hint", hint)
		}
		if linked {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := nc.RequestWithContext(rctx, contract.EnrollSubject, data)
			cancel()
			if err == nil {
				var rep contract.EnrollReply
				if err := json.Unmarshal(m.Data, &rep); err != nil {
					return "", fmt.Errorf("registrar's answer: %w", err)
				}
				if rep.Error == contract.EnrollTokenUsed {
					return "", fmt.Errorf("%w by the hub: %s (a token enrolls one device, once: if this device enrolled before, run it with its bundle; otherwise ask the operator for a new one: tether edge token %s)",
						ErrEnrollRefused, rep.Error, tok.Edge)
				}
				if rep.Error != "" {
					return "", fmt.Errorf("%w by the hub: %s", ErrEnrollRefused, rep.Error)
				}
				return rep.JWT, nil
			}
			log.Debug("registrar not answering yet", "err", err)
			wait = enrollRetry
		}
		select {
		case why := <-refusals.refused:
			return "", hubRefusal(tok, why)
		case <-ctx.Done():
			return "", fmt.Errorf("not enrolled (linked to a hub: %v): %w", linked, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// hubRefusal explains why the hub refused the token's connection.
func hubRefusal(tok *sitefile.EnrollToken, why string) error {
	if uc, err := jwt.DecodeUserClaims(tok.JWT); err == nil && uc.Expires > 0 && time.Now().Unix() >= uc.Expires {
		return fmt.Errorf("%w by the hub (%s): %w at %s", ErrEnrollRefused, why, sitefile.ErrTokenExpired,
			time.Unix(uc.Expires, 0).UTC().Format(time.RFC3339))
	}
	if strings.Contains(why, "Expired") {
		return fmt.Errorf("%w by the hub (%s): %w", ErrEnrollRefused, why, sitefile.ErrTokenExpired)
	}
	return fmt.Errorf("%w by the hub (%s): authorization failed: the token is forged, revoked, from another fabric, or its edge is not known to the hubs yet", ErrEnrollRefused, why)
}

// refusalLog passes the enrollment server's log on and notices the hub's
// refusal of the token's user, which nats-server only logs.
type refusalLog struct {
	*natslog.Logger
	once    sync.Once
	refused chan string
}

// Errorf logs and watches for an authorization refusal.
func (l *refusalLog) Errorf(format string, v ...any) {
	l.Logger.Errorf(format, v...)
	msg := fmt.Sprintf(format, v...)
	for _, s := range []string{"Authorization Violation", "User Authentication Expired", "Account Authentication Expired"} {
		if strings.Contains(msg, s) {
			l.once.Do(func() { l.refused <- s })
			return
		}
	}
}
