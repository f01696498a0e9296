package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// configKeysHelp lists every key of the config that defaults points to,
// from the type itself: its environment variable, its default and the
// first sentence of its field's doc comment.
func configKeysHelp(defaults any, docs map[string]string) string {
	known := map[string]reflect.Type{}
	collectKeys(reflect.TypeOf(defaults).Elem(), "", known)
	values := map[string]any{}
	_ = mapstructure.Decode(defaults, &values) // a struct always decodes to a map
	var b strings.Builder
	b.WriteString("Keys (file key, environment variable, default):\n")
	for _, k := range sortedKeys(known) {
		fmt.Fprintf(&b, "  %s  %s  [%s]\n", k, envName(k), defaultText(lookup(values, k)))
		for _, line := range wrap(docs[k], 72) {
			fmt.Fprintf(&b, "      %s\n", line)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func defaultText(v any) string {
	switch x := v.(type) {
	case nil:
		return "none"
	case string:
		if x == "" {
			return "none"
		}
		return x
	case []string:
		if len(x) == 0 {
			return "none"
		}
		return strings.Join(x, ",")
	case time.Duration:
		return x.String()
	case int64:
		if x >= 1<<20 {
			return fmt.Sprintf("%d (%s)", x, humanBytes(uint64(x)))
		}
	}
	return fmt.Sprint(v)
}

// wrap splits text into lines of at most width columns, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
