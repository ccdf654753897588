package e2e

import (
	"os"
	"testing"
)

// missingTool skips t because a tool it drives is not installed, saying
// why and how to install it. Under CI=true it fails t instead: .ci/run
// installs every tool the suite drives, so one missing there is a broken
// CI, never a reason to skip.
func missingTool(t testing.TB, why, install string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, and .ci/run must install it: %s", why, install)
	}
	t.Skipf("skipping: %s; install it with: %s", why, install)
}

// distributionBinary returns CNCF Distribution's binary, from Debian's
// docker-registry package, or calls missingTool.
func distributionBinary(t testing.TB) string {
	t.Helper()
	const bin = "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		missingTool(t, "CNCF Distribution is not installed ("+err.Error()+")", "apt-get install docker-registry")
	}
	return bin
}
