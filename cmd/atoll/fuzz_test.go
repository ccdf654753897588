package main

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParseConfig: parseFile never panics on any input, and a document it
// accepts is still accepted with an unknown key added, which it reports as
// a warning rather than an error.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("version: 0.1\nhttp:\n  addr: :5000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var warned []string
		var fc fileConfig
		if err := parseFile(data, &fc, func(k string) { warned = append(warned, k) }); err != nil {
			return
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			return
		}
		const unknown = "zzunknownkey"
		root := doc.Content[0]
		for i := 0; i < len(root.Content); i += 2 {
			if root.Content[i].Value == unknown || root.Content[i].Kind != yaml.ScalarNode {
				return // a duplicate key is an error of its own
			}
		}
		root.Content = append(root.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: unknown},
			&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "a"}, {Kind: yaml.ScalarNode, Tag: "!!int", Value: "1"}}})
		more, err := yaml.Marshal(&doc)
		if err != nil {
			return // not every accepted document re-encodes
		}
		warned = nil
		fc = fileConfig{}
		if err := parseFile(more, &fc, func(k string) { warned = append(warned, k) }); err != nil {
			t.Fatalf("with an unknown key added:\n%s\nerror: %v", more, err)
		}
		found := false
		for _, k := range warned {
			found = found || k == unknown
		}
		if !found {
			t.Fatalf("unknown key not reported: %q\n%s", warned, more)
		}
	})
}
