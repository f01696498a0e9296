package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/leaf"
)

// enrollTokenEnv holds a token's text for 'tether leaf --enroll' when no
// file is given (secrets never come from argv).
const enrollTokenEnv = "TETHER_ENROLL_TOKEN"

// tokenFlags are the flags that make an enrollment token.
type tokenFlags struct {
	out string
	ttl time.Duration
}

func (f *tokenFlags) add(fs *pflag.FlagSet) {
	fs.DurationVar(&f.ttl, "token-ttl", contract.DefaultEnrollTTL, "how long the enrollment token is valid (at most "+contract.MaxEnrollTTL.String()+")")
}

func (f *tokenFlags) validate() error {
	if f.ttl <= 0 || f.ttl > contract.MaxEnrollTTL {
		return usageError{fmt.Errorf("--token-ttl %s: want more than 0 and at most %s", f.ttl, contract.MaxEnrollTTL)}
	}
	return nil
}

// writeToken makes an enrollment token for the edge, writes it 0600 and
// prints what to run at the site.
func writeToken(d *deps, s *accounts.Store, name string, f tokenFlags) error {
	tok, err := s.NewEnrollToken(name, f.ttl)
	if err != nil {
		return err
	}
	out := f.out
	if out == "" {
		out = name + ".token"
	}
	if err := sitefile.WriteEnrollToken(out, tok); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "edge %s: account %s, enrollment token %s (0600, single use, expires %s)\n",
		name, tok.Account, out, tok.Expires.Format(time.RFC3339))
	fmt.Fprintf(d.stdout, "at the site: tether leaf --enroll %s --data /var/lib/tether\n", filepath.Base(out))
	return nil
}

func newEdgeTokenCmd(d *deps) *cobra.Command {
	var dir string
	var f tokenFlags
	cmd := &cobra.Command{
		Use:   "token NAME",
		Short: "Write a one-time enrollment token for an edge",
		Long: `Write a one-time enrollment token for the existing edge NAME (e.g. to replace
its device) to --out (default NAME.token) with mode 0600. At the site,
'tether leaf --enroll FILE' generates the edge's key on the device, proves it
holds it, and gets its leaf user from the hubs; the token is then used up.
The token expires after --token-ttl. It holds no key of the edge's leaf user:
the store never sees the device's seed.`,
		Example: `  tether edge token plant-7 --dir ./fabric --token-ttl 2h`,
		Args:    exactArgs(1, "one edge NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			if err := contract.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
			if err := f.validate(); err != nil {
				return err
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			return writeToken(d, s, name, f)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&f.out, "out", "", "token file to write (default NAME.token)")
	f.add(cmd.Flags())
	return cmd
}

// enrollFlags are 'tether leaf's enrollment flags.
type enrollFlags struct {
	token string
	hubs  []string
}

func (f *enrollFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.token, "enroll", "", "enroll this device with the token in FILE ('-': stdin; or set "+enrollTokenEnv+" to the token text), then run")
	fs.StringSliceVar(&f.hubs, "hub", nil, "with --enroll: hub URL(s) to use instead of the token's (tls://host:port or wss://host:port)")
}

// requested reports whether the device should enroll first.
func (f *enrollFlags) requested() bool { return f.token != "" || os.Getenv(enrollTokenEnv) != "" }

// load reads the token from the file, stdin or the environment and applies
// --hub.
func (f *enrollFlags) load(d *deps) (*sitefile.EnrollToken, error) {
	var tok *sitefile.EnrollToken
	var err error
	if f.token != "" {
		tok, err = sitefile.LoadEnrollToken(f.token, d.stdin)
	} else {
		tok, err = sitefile.ParseEnrollToken([]byte(os.Getenv(enrollTokenEnv)))
		if err != nil {
			err = fmt.Errorf("load enrollment token from %s: %w", enrollTokenEnv, err)
		}
	}
	if err != nil {
		return nil, err
	}
	var tlsURLs, wsURLs []string
	for _, u := range f.hubs {
		switch {
		case strings.HasPrefix(u, "tls://"):
			tlsURLs = append(tlsURLs, u)
		case strings.HasPrefix(u, "wss://"):
			wsURLs = append(wsURLs, u)
		default:
			return nil, usageError{fmt.Errorf("--hub %q: want tls://host:port or wss://host:port", u)}
		}
	}
	if tlsURLs != nil {
		tok.HubURLs = tlsURLs
	}
	if wsURLs != nil {
		tok.WebsocketURLs = wsURLs
	}
	if err := tok.Validate(); err != nil {
		return nil, usageError{fmt.Errorf("--hub: %w", err)}
	}
	return tok, nil
}

// enroll turns the token into the device's bundle at cfg.Bundle.
func (f *enrollFlags) enroll(ctx context.Context, d *deps, cfg leaf.Config) error {
	tok, err := f.load(d)
	if err != nil {
		return err
	}
	b, err := leaf.Enroll(ctx, cfg, tok, d.serverLogger())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(d.stderr, "edge %s enrolled: bundle %s (0600)\n", b.Edge, cfg.Bundle)
	return nil
}
