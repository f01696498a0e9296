package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"
)

// otherEnv are TETHER_* variables that are not config keys but mean
// something to the binary.
var otherEnv = map[string]bool{"TETHER_HOME": true, enrollTokenEnv: true}

// testEnvPrefixes are TETHER_* variables of the test and benchmark
// harnesses, inherited by the binaries they start.
var testEnvPrefixes = []string{"TETHER_TEST_", "TETHER_SOAK", "TETHER_SCALE_", "TETHER_BENCH"}

// warnUnknownEnv warns, on w, about every TETHER_* variable of environ that
// is not a key of the config out points to: a misspelt variable
// (TETHER_PINGINTERVAL) would otherwise be ignored without a word. Each
// warning names the closest known variable.
func warnUnknownEnv(w io.Writer, environ []string, out any) {
	known := map[string]reflect.Type{}
	collectKeys(reflect.TypeOf(out).Elem(), "", known)
	names := make([]string, 0, len(known))
	valid := map[string]bool{}
	for _, k := range sortedKeys(known) {
		n := envName(k)
		names = append(names, n)
		valid[n] = true
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if value == "" { // unset for viper, too
			continue
		}
		if !strings.HasPrefix(name, "TETHER_") || valid[name] || otherEnv[name] || hasAnyPrefix(name, testEnvPrefixes) {
			continue
		}
		fmt.Fprintf(w, "warning: environment variable %s is not a setting of this command and is ignored", name)
		if c := closest(name, names); c != "" {
			fmt.Fprintf(w, "; did you mean %s?", c)
		}
		fmt.Fprintln(w)
	}
}

// envName is the environment variable of a config key.
func envName(key string) string {
	return "TETHER_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// closest returns the candidate nearest to s in edit distance, ignoring
// underscores, or "" when none is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	strip := func(x string) string { return strings.ReplaceAll(x, "_", "") }
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strip(s), strip(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(strip(s))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
