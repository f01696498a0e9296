package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// deps is what commands need from the outside world.
type deps struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logLevel       *slog.LevelVar
	logJSON        *bool
}

func (d *deps) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: d.logLevel}
	if *d.logJSON {
		return slog.New(slog.NewJSONHandler(d.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(d.stderr, opts))
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d := &deps{stdin: os.Stdin, stdout: stdout, stderr: stderr, logLevel: new(slog.LevelVar), logJSON: new(bool)}
	root := newRootCmd(d)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "tether: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

func newRootCmd(d *deps) *cobra.Command {
	var level string
	root := &cobra.Command{
		Use:   "tether",
		Short: "Tether: a secure cloud-edge event fabric built on NATS",
		Long: `Tether gets data from edge sites to the cloud and lets cloud services reach
edge services, with edges that only dial out and buffer on disk while offline.

Start with 'tether dev' for the whole fabric in one process.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.logLevel.UnmarshalText([]byte(level)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
			}
			return nil
		},
		Args: exactArgs(0, "a command"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Suggest commands within two edits, and by prefix ("did you mean").
	root.SuggestionsMinimumDistance = 2
	root.PersistentFlags().StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().BoolVar(d.logJSON, "log-json", false, "log as JSON lines")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(d),
		newInitCmd(d),
		newHubCmd(d),
		newEdgeCmd(d),
		newUserCmd(d),
		newPolicyCmd(d),
		newStoreCmd(d),
		newLeafCmd(d),
		newDevCmd(d),
		newPubCmd(d),
		newSubCmd(d),
		newStatusCmd(d),
		newSvcCmd(d),
		newAuditCmd(d),
	)
	return root
}

// defaultDir is the per-user data directory: $TETHER_HOME, else
// $XDG_DATA_HOME/tether, else ~/.local/share/tether.
func defaultDir(sub string) string {
	if h := os.Getenv("TETHER_HOME"); h != "" {
		return filepath.Join(h, sub)
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "tether", sub)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".tether", sub)
	}
	return filepath.Join(home, ".local", "share", "tether", sub)
}

// exactArgs is cobra.ExactArgs returning a usageError. A command that
// takes no arguments but has subcommands reports an unknown subcommand.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if n == 0 && len(args) > 0 && cmd.HasSubCommands() {
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError{fmt.Errorf("unknown command %q for %q%s (see '%s --help')", args[0], cmd.CommandPath(), hint, cmd.CommandPath())}
		}
		if len(args) != n {
			return usageError{fmt.Errorf("%s: want %s, got %d argument(s) (see '%s --help')", cmd.CommandPath(), what, len(args), cmd.CommandPath())}
		}
		return nil
	}
}
