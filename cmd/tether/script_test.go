package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite cmp expectations in testdata/script from actual output")

// TestMain lets the scripts run 'tether' as a command: the test binary
// re-executes itself as tether and calls run, so scripts exercise the real
// argument parsing, environment and exit codes without a separate build.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tether": func() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI scripts in testdata/script. They cover what
// fails before a server starts (and so stay fast): store creation, edge
// bundles, and config and bundle errors of hub and leaf.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// Keep every default directory inside the script's work dir.
			env.Setenv("TETHER_HOME", filepath.Join(env.WorkDir, ".tether-home"))
			return nil
		},
		// [root]: chmod cannot keep root out, so scripts take another way.
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		// chmod is a testscript builtin; mode is its counterpart for checks.
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     cmdExits,
			"jsonfield": cmdJSONField,
			"mode":      cmdMode,
			"tree":      cmdTree,
		},
	})
}

// cmdMode: [!] mode PERM FILE... checks that each file or directory has
// exactly the permission bits PERM (octal); with !, that none has.
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	want := parsePerm(ts, args[0])
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		got := fi.Mode().Perm()
		switch {
		case !neg && got != want:
			ts.Fatalf("%s has mode %04o, want %04o", f, got, want)
		case neg && got == want:
			ts.Fatalf("%s has mode %04o, want anything else", f, got)
		}
	}
}

func parsePerm(ts *testscript.TestScript, s string) fs.FileMode {
	p, err := strconv.ParseUint(s, 8, 32)
	if err != nil || p > 0o777 {
		ts.Fatalf("bad permission %q: want octal such as 0600", s)
	}
	return fs.FileMode(p)
}

// cmdExits: exits CODE PROG [ARGS...] runs PROG like exec and checks that it
// exits with CODE; its stdout and stderr are kept for stdout/stderr/cmp.
// testscript's '! exec' accepts any failure, but tether promises 1 for
// errors and 2 for usage and config errors.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("bad exit code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("run %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdJSONField: [!] jsonfield FILE PATH REGEXP parses FILE (or the last
// command's stdout, if FILE is stdout) as JSON and checks that the value at
// PATH (dot-separated keys and list indexes, e.g. hub_urls.0) exists and
// matches REGEXP. Strings are matched as is, other values as JSON text.
// With !, the check is that the field is absent or does not match.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH REGEXP")
	}
	file, path, pattern := args[0], args[1], args[2]
	var doc any
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &doc); err != nil {
		ts.Fatalf("%s is not JSON: %v", file, err)
	}
	re, err := regexp.Compile(pattern)
	ts.Check(err)
	val, err := jsonAt(doc, path)
	if err != nil {
		if neg {
			return
		}
		ts.Fatalf("%s: %v", file, err)
	}
	text, ok := val.(string)
	if !ok {
		b, _ := json.Marshal(val)
		text = string(b)
	}
	switch matched := re.MatchString(text); {
	case !neg && !matched:
		ts.Fatalf("%s: %s = %q, want a match for %q", file, path, text, pattern)
	case neg && matched:
		ts.Fatalf("%s: %s = %q, want no match for %q", file, path, text, pattern)
	}
}

func jsonAt(v any, path string) (any, error) {
	for _, key := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[key]
			if !ok {
				return nil, fmt.Errorf("no field %q in %s", key, path)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("no element %q in %s (list of %d)", key, path, len(x))
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("%s: %q is not inside an object or list", path, key)
		}
	}
	return v, nil
}

// cmdTree: tree DIR writes to stdout one line per entry under DIR, sorted
// by path: its mode (as ls -l shows it) and its path relative to DIR.
// Together with cmp it pins down a directory's exact layout and modes.
func cmdTree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tree DIR")
	}
	root := ts.MkAbs(args[0])
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s\n", fi.Mode(), filepath.ToSlash(rel))
		return nil
	})
	ts.Check(err)
	fmt.Fprint(ts.Stdout(), b.String())
}
