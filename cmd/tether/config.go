package main

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// loadConfig fills out (a pointer to a config struct holding its defaults)
// with precedence defaults < file < env TETHER_<KEY> < flags. flagKeys maps
// flag names to config keys; only flags the user set override. Unknown keys
// in the file and values that do not decode are errors naming the key.
func loadConfig(file string, flags *pflag.FlagSet, flagKeys map[string]string, out any) error {
	known := map[string]reflect.Type{}
	collectKeys(reflect.TypeOf(out).Elem(), "", known)

	v := viper.New()
	defaults := map[string]any{}
	if err := mapstructure.Decode(out, &defaults); err != nil {
		return fmt.Errorf("config defaults: %w", err)
	}
	for k := range known {
		v.SetDefault(k, lookup(defaults, k))
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config %s: %w", file, err)
		}
		fv := viper.New()
		fv.SetConfigFile(file)
		_ = fv.ReadInConfig()
		var unknown []string
		for _, k := range fv.AllKeys() {
			if _, ok := known[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("config %s: unknown key(s) %s; valid keys: %s", file,
				strings.Join(unknown, ", "), strings.Join(sortedKeys(known), ", "))
		}
	}
	v.SetEnvPrefix("TETHER")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for flag, key := range flagKeys {
		if f := flags.Lookup(flag); f != nil && f.Changed {
			if err := v.BindPFlag(key, f); err != nil {
				return err
			}
		}
	}
	// Decode key by key so a bad value names its key.
	var errs []error
	for _, k := range sortedKeys(known) {
		single := viper.New()
		single.Set(k, v.Get(k))
		if err := single.UnmarshalExact(out); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q (%s)", k, fmt.Sprint(v.Get(k)), describe(known[k])))
		}
	}
	if len(errs) > 0 {
		if file != "" {
			return fmt.Errorf("config %s: %w", file, errors.Join(errs...))
		}
		return errors.Join(errs...)
	}
	return nil
}

func describe(t reflect.Type) string {
	switch {
	case t.String() == "time.Duration":
		return "want a duration such as 500ms, 2s or 1m"
	case t.Kind() == reflect.Bool:
		return "want true or false"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "want a whole number"
	case t.Kind() == reflect.Slice:
		return "want a list"
	}
	return "want " + t.Kind().String()
}

func collectKeys(t reflect.Type, prefix string, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
			collectKeys(f.Type, key+".", out)
			continue
		}
		out[key] = f.Type
	}
}

func lookup(m map[string]any, key string) any {
	parts := strings.SplitN(key, ".", 2)
	val := m[parts[0]]
	if len(parts) == 1 {
		return val
	}
	switch sub := val.(type) {
	case map[string]any:
		return lookup(sub, parts[1])
	default:
		var mm map[string]any
		if mapstructure.Decode(sub, &mm) == nil {
			return lookup(mm, parts[1])
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
