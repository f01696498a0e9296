package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
)

// checkOut refuses to overwrite an existing --out file (it may be another
// edge's bundle) unless --force, before anything is created.
func checkOut(out, name string, token, force bool) error {
	if token && out == "" {
		out = name + ".token"
	}
	if force {
		return nil
	}
	if _, err := os.Lstat(out); err == nil {
		return usageError{fmt.Errorf("--out %s: file exists (another edge's bundle or token?); choose another --out, or --force to overwrite it", out)}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	return nil
}

// addEdgeFiles creates the edge in the store and writes its bundle (or
// enrollment token). If the file cannot be written the edge is removed
// again, so a failed add leaves nothing behind and can simply be re-run.
func addEdgeFiles(d *deps, s *accounts.Store, name, out string, token bool, tf tokenFlags) error {
	if token {
		if _, err := s.AddEdgeForEnrollment(name); err != nil {
			return edgeExistsHint(err, name, s.Dir())
		}
		tf.out = out
		if err := writeToken(d, s, name, tf); err != nil {
			return rollbackEdge(s, name, err)
		}
		return nil
	}
	if _, err := s.AddEdge(name); err != nil {
		return edgeExistsHint(err, name, s.Dir())
	}
	b, err := s.Bundle(name)
	if err == nil {
		err = sitefile.WriteBundle(out, b)
	}
	if err != nil {
		return rollbackEdge(s, name, err)
	}
	fmt.Fprintf(d.stdout, "edge %s: account %s, bundle %s (0600)\n", name, b.Account, out)
	return nil
}

func rollbackEdge(s *accounts.Store, name string, cause error) error {
	if err := s.RemoveEdge(name); err != nil {
		return fmt.Errorf("%w; and the new edge %s stays in the store %s (%v): remove it with 'tether edge rm %s --dir %s' before adding it again",
			cause, name, s.Dir(), err, name, s.Dir())
	}
	return fmt.Errorf("%w (edge %s not added)", cause, name)
}

// edgeExistsHint says what to do about an edge that exists already.
func edgeExistsHint(err error, name, dir string) error {
	if errors.Is(err, accounts.ErrEdgeExists) {
		return fmt.Errorf("%w: to push it to running hubs, 'tether edge push %s --dir %s --hub URL'; for a new device, 'tether edge token %s --dir %s'",
			err, name, dir, name, dir)
	}
	return err
}

// pushEdge pushes the edge's account to the hubs at url and prepares its
// cloud side. A failure says how to push again: the edge exists in the
// store from now on.
func pushEdge(ctx context.Context, d *deps, s *accounts.Store, url, name, dir string) error {
	err := pushAccount(ctx, d, s, url, contract.EdgeAccountName(name))
	if err == nil {
		err = prepareEdge(ctx, s, url, name)
	}
	if err != nil {
		return fmt.Errorf("edge %s is in the store but the hubs may not know it: %w; push it again with 'tether edge push %s --dir %s --hub URL'",
			name, err, name, dir)
	}
	return nil
}

func newEdgePushCmd(d *deps) *cobra.Command {
	var ff fabricFlags
	cmd := &cobra.Command{
		Use:   "push NAME...",
		Short: "Push existing edges' accounts to the running hubs",
		Long: `Push the accounts of existing edges to the running hubs and create their
command queues there: for an edge whose 'edge add --push' failed, or that was
added without --push while the hubs ran (its leaf then logs "Authorization
Violation" and that the hubs may not know its account). Idempotent.`,
		Example: `  tether edge push plant-7 --dir ./fabric --hub tls://127.0.0.1:4222
  tether edge push dev-a dev-b --dev`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s: want one or more edge NAMEs (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := contract.ValidateEdgeName(name); err != nil {
					return usageError{err}
				}
			}
			s, url, err := ff.open()
			if err != nil {
				return err
			}
			for _, name := range args {
				if _, err := s.Edge(name); err != nil {
					return err
				}
				if err := pushEdge(cmd.Context(), d, s, url, name, s.Dir()); err != nil {
					return err
				}
				fmt.Fprintf(d.stdout, "edge %s pushed to %s\n", name, url)
			}
			return nil
		},
	}
	ff.register(cmd)
	return cmd
}
