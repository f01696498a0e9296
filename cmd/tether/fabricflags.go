package main

import (
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tether-fabric/tether/accounts"
)

// fabricFlags say which store to use and which running hub to talk to:
// --dir and --hub, or --dev for the running 'tether dev' fabric.
type fabricFlags struct {
	dir, hub, devDir string
	dev              bool
	flags            *pflag.FlagSet
}

func (f *fabricFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	f.flags = fl
	fl.StringVar(&f.dir, "dir", defaultDir("fabric"), "store directory")
	fl.StringVar(&f.hub, "hub", "tls://127.0.0.1:4222", "a hub's client URL")
	fl.BoolVar(&f.dev, "dev", false, "the running 'tether dev' fabric (its store and hub)")
	fl.StringVar(&f.devDir, "dev-dir", defaultDir("dev"), "with --dev: the dev fabric's directory (--dir DIR also names it)")
}

// open opens the store and returns the hub URL to use.
func (f *fabricFlags) open() (*accounts.Store, string, error) {
	dir, url := f.dir, f.hub
	if f.dev {
		devDir := devDirOf(f.flags, f.dir, f.devDir)
		info, err := readDevInfo(devDir)
		if err != nil {
			return nil, "", err
		}
		dir, url = filepath.Join(devDir, "store"), info.Hub.ClientURL
	}
	s, err := accounts.Open(dir)
	return s, url, err
}
