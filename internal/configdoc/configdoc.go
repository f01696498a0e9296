// Package configdoc reads the documentation of a config type from its Go
// source, so a command's help lists every key with the field's own doc
// comment and cannot drift from the type.
//
// Invariant: keys are the fields' mapstructure tags (nested structs give
// dotted keys, as the config loader reads them); a field without a tag is
// not a key.
package configdoc

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
)

// Summaries parses src (a Go source file) and returns, for each key of the
// struct type typeName, the first sentence of its field's doc comment,
// without the leading field name.
func Summaries(src []byte, typeName string) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("parse config source: %w", err)
	}
	types := map[string]*ast.StructType{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok {
			if st, ok := ts.Type.(*ast.StructType); ok {
				types[ts.Name.Name] = st
			}
		}
		return true
	})
	st, ok := types[typeName]
	if !ok {
		return nil, fmt.Errorf("config source has no struct type %s", typeName)
	}
	out := map[string]string{}
	collect(st, "", types, out)
	return out, nil
}

func collect(st *ast.StructType, prefix string, types map[string]*ast.StructType, out map[string]string) {
	for _, field := range st.Fields.List {
		if field.Tag == nil || len(field.Names) == 0 {
			continue
		}
		tag, err := strconv.Unquote(field.Tag.Value)
		if err != nil {
			continue
		}
		key := reflect.StructTag(tag).Get("mapstructure")
		if key == "" || key == "-" {
			continue
		}
		if id, ok := field.Type.(*ast.Ident); ok && types[id.Name] != nil {
			collect(types[id.Name], prefix+key+".", types, out)
			continue
		}
		out[prefix+key] = summary(field.Names[0].Name, field.Doc.Text())
	}
}

// summary is the doc comment's first sentence, without a leading
// "<Name> is" or "<Name>:".
func summary(name, doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	for from := 0; ; {
		i := strings.Index(doc[from:], ". ")
		if i < 0 {
			break
		}
		end := from + i
		if !strings.HasSuffix(doc[:end], "e.g") && !strings.HasSuffix(doc[:end], "i.e") {
			doc = doc[:end+1]
			break
		}
		from = end + 2
	}
	for _, p := range []string{name + " is ", name + " are ", name + ": "} {
		if rest, ok := strings.CutPrefix(doc, p); ok {
			doc = rest
			break
		}
	}
	return strings.TrimSuffix(doc, ".")
}
