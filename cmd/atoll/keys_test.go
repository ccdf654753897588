package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The configuration reference (README.md) is the list of keys: these
// helpers read it and the keys fileConfig decodes, so the tests can hold
// the two to each other.

// acceptedKeys are registry:2's keys atoll takes without using them; the
// README says so.
var acceptedKeys = []string{"version", "storage.cache", "proxy.ttl"}

// readmeReference returns the rows of the README's configuration
// reference table, each as its cells.
func readmeReference(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\n## Configuration reference\n")
	if !ok {
		t.Fatal("README has no Configuration reference section")
	}
	section, _, _ := strings.Cut(after, "\nCommands:")
	var rows [][]string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| flag ") {
			continue
		}
		cells := strings.Split(line, "|")
		rows = append(rows, cells[1:len(cells)-1])
	}
	if len(rows) < 20 {
		t.Fatalf("read %d rows of the configuration reference", len(rows))
	}
	return rows
}

var backticked = regexp.MustCompile("`([^`]+)`")

// documentedKeys returns the config keys of the reference table, braces
// expanded: `a.{b,c}` is a.b and a.c.
func documentedKeys(t *testing.T) []string {
	var keys []string
	for _, row := range readmeReference(t) {
		if len(row) < 3 {
			continue
		}
		prev := ""
		for _, m := range backticked.FindAllStringSubmatch(row[2], -1) {
			k := m[1]
			if strings.HasPrefix(k, ".") { // `a.b`, `.c` is a.b and a.c
				k = prev[:strings.LastIndex(prev, ".")] + k
			}
			keys = append(keys, expandBraces(k)...)
			prev = k
		}
	}
	return keys
}

// documentedVariables returns the variables of the reference table: a
// "_KEY" after REGISTRY_A_B is REGISTRY_A_KEY; "=v" is kept.
func documentedVariables(t *testing.T) []string {
	var vars []string
	for _, row := range readmeReference(t) {
		if len(row) < 2 {
			continue
		}
		prev := ""
		for _, m := range backticked.FindAllStringSubmatch(row[1], -1) {
			v := m[1]
			if strings.HasPrefix(v, "_") {
				v = prev[:strings.LastIndex(prev, "_")] + v
			}
			vars = append(vars, v)
			prev, _, _ = strings.Cut(v, "=")
		}
	}
	return vars
}

// expandBraces expands the (possibly nested) brace lists of a key.
func expandBraces(s string) []string {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}
	}
	depth, close := 0, -1
	var parts []string
	last := open + 1
	for i := open; i < len(s) && close < 0; i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				parts, close = append(parts, s[last:i]), i
			}
		case ',':
			if depth == 1 {
				parts, last = append(parts, s[last:i]), i+1
			}
		}
	}
	var out []string
	for _, p := range parts {
		for _, rest := range expandBraces(s[close+1:]) {
			out = append(out, expandBraces(s[:open]+p+rest)...)
		}
	}
	return out
}

// decodedKeys returns every key fileConfig decodes, "a.b", a list of
// sections as "a[].b"; leaves reports which hold values, not sections.
func decodedKeys() (keys []string, leaves map[string]bool) {
	leaves = map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			if opts == "inline" {
				walk(f.Type, prefix)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			key := prefix + name
			keys = append(keys, key)
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !isScalar(ft.Elem()):
				walk(ft.Elem(), key+"[].")
			case ft.Kind() == reflect.Struct && !isScalar(ft):
				walk(ft, key+".")
			default:
				leaves[key] = true
			}
		}
	}
	walk(reflect.TypeOf(fileConfig{}), "")
	return keys, leaves
}

// isScalar reports whether a struct type decodes from one YAML scalar
// (it implements yaml.Unmarshaler or encoding.TextUnmarshaler).
func isScalar(t reflect.Type) bool {
	for _, m := range []string{"UnmarshalYAML", "UnmarshalText"} {
		if _, ok := reflect.PointerTo(t).MethodByName(m); ok {
			return true
		}
	}
	return false
}

// covers reports whether documented key doc names key or a section
// holding it.
func covers(doc, key string) bool {
	return key == doc || strings.HasPrefix(key, doc+".") || strings.HasPrefix(key, doc+"[]")
}

// TestEveryKeyDocumented: every key the file decodes is in the
// configuration reference (itself or its section), or among the keys
// registry:2 has that atoll accepts unused, and every key the reference
// names is decoded.
func TestEveryKeyDocumented(t *testing.T) {
	docs := documentedKeys(t)
	decoded, leaves := decodedKeys()
	for _, k := range decoded {
		if leaves[k] && !slices.ContainsFunc(append(slices.Clone(docs), acceptedKeys...), func(d string) bool { return covers(d, k) }) {
			t.Errorf("key %s is decoded but not in README's configuration reference", k)
		}
	}
	for _, d := range docs {
		if !slices.Contains(decoded, d) {
			t.Errorf("README documents key %s, which is not decoded", d)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range acceptedKeys {
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("README does not say %s is accepted unused", k)
		}
	}
}
