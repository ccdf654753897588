package e2e

import (
	"bufio"
	"errors"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// importRules is DESIGN.md's dependency direction as data: for each package
// pattern, the atoll packages it may import. Patterns are relative to the
// module path; "x/..." matches x and every package below it, "x" only x;
// "..." alone matches everything. The most specific pattern naming a
// package decides. Every package may also import its own subpackages.
// Only non-test imports are checked.
var importRules = map[string][]string{
	"cmd/...":          {"..."},
	"node/...":         {"api/...", "oci", "peer/...", "ring/...", "storage/...", "node/queue"},
	"node/queue":       {},                                               // a durable queue, shared by webhooks and replication
	"node/metasync":    {"storage", "storage/metadb", "storage/metalog"}, // metadata replication: no transport, no node
	"node/placement":   {"ring", "storage", "storage/filesystem"},        // blob placement: no transport, HTTP or metadata; peer only through the interfaces it declares
	"node/gc":          {"oci", "storage"},                               // garbage collection with retention: no transport, no node
	"node/route":       {"api", "api/auth", "storage"},                   // request routing between members: no cluster, ring or peer, only the interfaces it declares
	"node/gc/fence":    {},                                               // what clients were told exists: a leaf
	"node/policy":      {"api", "storage/diskspace", "storage/metadb"},   // quotas and immutable tags: no transport, no node
	"node/registry2":   {"oci", "storage"},                               // registry:2 import: storage only
	"node/notify":      {"api", "node/queue"},                            // webhooks: events in, a queue out
	"node/pullthrough": {"api", "oci", "storage"},                        // the pull-through cache: members only through the interface it declares
	"node/replication": {"api", "node/queue", "oci", "storage"},          // replication between registries: the cluster only through its Deps
	"api/...":          {"oci", "storage"},                               // the interfaces; never a backend
	"api/auth":         {"api", "oci"},                                   // writes its refusals through api's one error table
	"oci/...":          {},                                               // the OCI data model: a leaf
	"storage/...":      {"storage/..."},
	"storage/metadb":   {"oci", "storage/..."}, // the index decodes manifests' media types through the OCI data model, a leaf
	"storage/metalog":  {},                     // the metadata log\'s records: a leaf
	"ring/...":         {},
	"peer/...":         {"ring/...", "storage", "storage/metalog"},
	"test/...":         {"..."},
}

// mustExist are packages the check must see, so it cannot pass vacuously.
var mustExist = []string{"api", "oci", "storage", "storage/filesystem", "storage/metadb", "node", "node/placement", "node/route", "node/gc", "node/gc/fence",
	"node/metasync", "node/policy", "node/registry2", "node/notify", "node/pullthrough", "node/replication", "cmd/atoll"}

// TestImportDirection fails on every import of an atoll package that the
// table above does not allow.
func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = moduleRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, stderrOf(err))
	}
	modPath := modulePath(t)

	seen := map[string]bool{}
	var violations []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg, ok := relative(modPath, fields[0])
		if !ok {
			continue
		}
		seen[pkg] = true
		rule, ok := ruleFor(pkg)
		if !ok {
			violations = append(violations, pkg+": no rule in importRules; add the package to the table")
			continue
		}
		for _, imp := range fields[1:] {
			dep, internal := relative(modPath, imp)
			if internal && !allowed(pkg, dep, importRules[rule]) {
				violations = append(violations, pkg+" imports "+dep+" (rule "+rule+" allows "+describe(importRules[rule])+")")
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading go list output: %v", err)
	}
	for _, p := range mustExist {
		if !seen[p] {
			t.Errorf("go list did not report package %s; the check would pass vacuously", p)
		}
	}
	sort.Strings(violations)
	for _, v := range violations {
		t.Errorf("import direction violated: %s", v)
	}
	t.Logf("checked %d packages against %d rules, %d violations", len(seen), len(importRules), len(violations))
}

// ruleFor returns the most specific pattern in importRules matching pkg.
func ruleFor(pkg string) (string, bool) {
	best := ""
	for pat := range importRules {
		if matches(pat, pkg) && len(pat) > len(best) {
			best = pat
		}
	}
	return best, best != ""
}

// allowed reports whether pkg may import dep under the allowed patterns.
func allowed(pkg, dep string, patterns []string) bool {
	if strings.HasPrefix(dep, pkg+"/") {
		return true // its own subpackage
	}
	return slices.ContainsFunc(patterns, func(pat string) bool { return matches(pat, dep) })
}

// matches reports whether pattern names pkg.
func matches(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if root, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == root || strings.HasPrefix(pkg, root+"/")
	}
	return pkg == pattern
}

func describe(patterns []string) string {
	if len(patterns) == 0 {
		return "no atoll package"
	}
	return strings.Join(patterns, ", ")
}

// relative strips the module path: "github.com/atollhq/atoll/oci" is
// "api/oci". ok is false for packages outside the module.
func relative(modPath, importPath string) (string, bool) {
	return strings.CutPrefix(importPath, modPath+"/")
}

func modulePath(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = moduleRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v\n%s", err, stderrOf(err))
	}
	return strings.TrimSpace(string(out))
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
