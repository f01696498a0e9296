package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"
)

// connFlags say where pub and sub connect: an explicit server, or the dev
// fabric's hub (as the cloud user) or one of its edges.
type connFlags struct {
	server, creds, ca, edge, devDir string
	dev                             bool
}

func (c *connFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.server, "server", "", "NATS URL to connect to")
	f.StringVar(&c.creds, "creds", "", "user creds file")
	f.StringVar(&c.ca, "tlsca", "", "CA file to verify the server")
	f.BoolVar(&c.dev, "dev", false, "connect to the running 'tether dev' fabric (the hub, as the cloud user)")
	f.StringVar(&c.edge, "edge", "", "with --dev: connect to this dev edge's local port instead of the hub")
	f.StringVar(&c.devDir, "dev-dir", defaultDir("dev"), "with --dev: the dev fabric's directory")
}

func (c *connFlags) connect(extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name("tether-cli"), nats.Timeout(5 * time.Second)}, extra...)
	url := c.server
	if c.dev {
		info, err := readDevInfo(c.devDir)
		if err != nil {
			return nil, err
		}
		if c.edge == "" {
			url, c.ca = info.Hub.ClientURL, info.Hub.CA
			if c.creds == "" {
				c.creds = info.Hub.Creds
			}
		} else {
			for _, e := range info.Edges {
				if e.Name == c.edge {
					url = e.ClientURL
				}
			}
			if url == "" {
				return nil, usageError{fmt.Errorf("--edge %q: the dev fabric has edges %v", c.edge, devEdges)}
			}
		}
	} else if c.edge != "" {
		return nil, usageError{errors.New("--edge needs --dev")}
	}
	if url == "" {
		return nil, usageError{errors.New("say where to connect: --server URL or --dev")}
	}
	if c.creds != "" {
		// The same rule as the leaf's bundle: a creds file holds a seed
		// (UserOptions refuses a group- or world-readable one). A cloud
		// user gets its own inbox prefix, the only one the hub lets it
		// receive replies on.
		user, err := fleet.UserOptions(c.creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, user...)
	}
	if c.ca != "" {
		opts = append(opts, nats.RootCAs(c.ca))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return nc, nil
}

func newPubCmd(d *deps) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "pub SUBJECT MESSAGE",
		Short: "Publish one message",
		Long: `Publish one message and wait for the server's verdict: a publish the server
refuses (a subject the user may not publish on) exits 1 with the server's
reason. SUBJECT is a literal subject: wildcards (* and >) and empty tokens
are refused.`,
		Example: `  # telemetry at a dev edge: buffered on its disk, then in the cloud stream
  tether pub --dev --edge dev-a telemetry.temp 21.5
  # a command from the cloud to edge dev-b
  tether pub --dev edges.dev-b.cmd.reboot now
  # at an edge site, on the edge's local port
  tether pub --server nats://127.0.0.1:4222 telemetry.line1.rpm 1450
  # to the hubs as a cloud user
  tether pub --server tls://hub-1:4222 --creds app.creds --tlsca ca.pem edges.plant-7.cmd.stop now`,
		Args: exactArgs(2, "SUBJECT and MESSAGE"),
		RunE: func(_ *cobra.Command, args []string) error {
			subject := args[0]
			if err := contract.CheckPublishSubject(subject); err != nil {
				return usageError{err}
			}
			// The refusal of the publish is publishConfirmed's to report;
			// nats.go's default handler would print it a second time.
			nc, err := cf.connect(newRefusals().handler(d.stderr))
			if err != nil {
				return err
			}
			defer nc.Close()
			if err := publishConfirmed(nc, subject, []byte(args[1])); err != nil {
				return err
			}
			fmt.Fprintf(d.stdout, "published %d bytes on %s\n", len(args[1]), subject)
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newSubCmd(d *deps) *cobra.Command {
	var cf connFlags
	var count int
	cmd := &cobra.Command{
		Use:   "sub SUBJECT",
		Short: "Print messages on a subject until interrupted (or --count)",
		Args:  exactArgs(1, "SUBJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usageError{fmt.Errorf("--count %d: want 0 (never stop) or a positive number of messages", count)}
			}
			// A subscription the user may not make is refused by the
			// server asynchronously, before the PONG that ends Flush (or,
			// after a policy change, when the connection comes back): exit
			// 1 with the reason instead of listening to nothing.
			refused := newRefusals()
			nc, err := cf.connect(refused.handler(d.stderr))
			if err != nil {
				return err
			}
			defer nc.Close()
			refusal := func(err error) error {
				return fmt.Errorf("subscribe %s: refused by the server (this user may not subscribe to this subject): %w", args[0], err)
			}
			ch := make(chan *nats.Msg, 1024)
			sub, err := nc.ChanSubscribe(args[0], ch)
			if err != nil {
				return fmt.Errorf("subscribe %s: %w", args[0], err)
			}
			defer sub.Unsubscribe()
			if err := nc.Flush(); err != nil {
				return err
			}
			if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
				return refusal(err)
			}
			fmt.Fprintf(d.stderr, "listening on %s\n", args[0])
			for n := 0; count == 0 || n < count; n++ {
				select {
				case <-cmd.Context().Done():
					return nil
				case err := <-refused:
					return refusal(err)
				case m := <-ch:
					if batchMarker(m) {
						n--
						continue
					}
					fmt.Fprintf(d.stdout, "[%s] %s\n", m.Subject, m.Data)
				}
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many messages (0: never)")
	return cmd
}

// batchMarker reports whether m is an edge forwarder's end-of-batch marker:
// nats-server's fast-batch commit, which the stream never stores but live
// subscribers in CLOUD receive. Edges send it on
// edges.<edge>.telemetry._tether.eob (contract.BatchEndSubject); edges of
// earlier versions sent it on the batch's last data subject, where it is
// empty, has no message id (every forwarded message has one), and its
// reply, as the server records it in Nats-Request-Info, ends in the
// batch-commit operation "$FI".
func batchMarker(m *nats.Msg) bool {
	if strings.HasSuffix(m.Subject, "."+contract.BatchEndSubject) && len(m.Data) == 0 {
		return true
	}
	if len(m.Data) > 0 || m.Header == nil || m.Header.Get(nats.MsgIdHdr) != "" {
		return false
	}
	var info struct {
		Reply string `json:"reply"`
	}
	if json.Unmarshal([]byte(m.Header.Get("Nats-Request-Info")), &info) != nil {
		return false
	}
	return strings.HasSuffix(info.Reply, ".$FI")
}
