package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
)

// devDirOf returns the dev fabric's directory for a command run with
// --dev: --dev-dir if given; else --dir if given, which 'tether dev' calls
// its directory too (the dev dir itself, or its store directory); else the
// default dev dir.
func devDirOf(flags *pflag.FlagSet, dir, devDir string) string {
	if flags.Changed("dev-dir") || !flags.Changed("dir") {
		return devDir
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.json")); err != nil {
		// --dir DEVDIR/store, the store inside the dev dir.
		if _, perr := os.Stat(filepath.Join(filepath.Dir(dir), "dev.json")); perr == nil {
			return filepath.Dir(dir)
		}
	}
	return dir
}
