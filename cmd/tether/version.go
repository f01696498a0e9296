package main

import (
	"fmt"
	"runtime"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/internal/buildinfo"
)

func newVersionCmd(d *deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(d.stdout, "tether %s (nats-server %s, %s)\n", buildinfo.String(), server.VERSION, runtime.Version())
			return nil
		},
	}
}
