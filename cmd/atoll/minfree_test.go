package main

import (
	"testing"
)

// TestMinFree reads storage.filesystem.minfree from the file and from
// REGISTRY_STORAGE_FILESYSTEM_MINFREE, which wins.
func TestMinFree(t *testing.T) {
	const total = 100 << 30
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       uint64 // floor on a 100 GiB filesystem
		wantErr    bool
	}{
		{name: "default", yaml: "version: 0.1\n", want: 1 << 30},
		{name: "bytes", yaml: "storage:\n  filesystem:\n    minfree: 500MiB\n", want: 500 << 20},
		{name: "percent", yaml: "storage:\n  filesystem:\n    minfree: 5%\n", want: 5 << 30},
		{name: "none", yaml: "storage:\n  filesystem:\n    minfree: \"0\"\n", want: 0},
		{name: "env wins", yaml: "storage:\n  filesystem:\n    minfree: 5%\n", env: []string{"REGISTRY_STORAGE_FILESYSTEM_MINFREE=2GiB"}, want: 2 << 30},
		{name: "bad", yaml: "storage:\n  filesystem:\n    minfree: lots\n", wantErr: true},
		{name: "over 100%", yaml: "storage:\n  filesystem:\n    minfree: 120%\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fc fileConfig
			warn := func(k string) { t.Errorf("unknown key %s", k) }
			if err := parseFile([]byte(tc.yaml), &fc, warn); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(&fc, tc.env, warn); err != nil {
				t.Fatal(err)
			}
			c, err := fc.nodeConfig()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("minfree accepted: %v", c.Storage.MinFree)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Storage.MinFree.Of(total); got != tc.want {
				t.Errorf("floor on 100 GiB = %d, want %d", got, tc.want)
			}
		})
	}
}
