package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const conformanceInstall = "go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// TestConformance runs the OCI Distribution Spec conformance suite (the
// distribution-spec "conformance" binary) against a live single node, with
// every optional API the registry supports enabled.
func TestConformance(t *testing.T) {
	bin := conformanceBinary(t)
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	runConformance(t, bin, n.Addr(), "filesystem")
}

// conformanceBinary finds the suite or skips (fails under CI).
func conformanceBinary(t *testing.T) string {
	t.Helper()
	bin, err := findConformance()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OCI conformance binary not found (%v); CI must install it: %s", err, conformanceInstall)
		}
		t.Skipf("skipping: OCI conformance binary not found (%v); install it with: %s", err, conformanceInstall)
	}
	return bin
}

// runConformance runs the suite against the registry at addr and fails
// the test on any failing check; label names the setup in the summary.
func runConformance(t *testing.T, bin, addr, label string) {
	t.Helper()
	results := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results
	cmd.Env = append(withoutPrefix(cleanEnv(), "OCI_"),
		"OCI_REGISTRY="+addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=1.1",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_RESULTS_DIR="+results,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run() // non-zero when a check fails; junit.xml says which
	elapsed := time.Since(start).Round(time.Millisecond)

	suite, err := readJUnit(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance (%v) left no readable junit.xml: %v\nstdout:\n%s\nstderr:\n%s",
			runErr, err, stdout.String(), stderr.String())
	}
	summary := fmt.Sprintf("OCI conformance (%s): %d checks, %d failures (%d errors, %d skipped; %s)",
		label, suite.Tests, suite.Failures, suite.Errors, suite.Skipped+suite.Disabled, elapsed)
	t.Log(summary)
	reportSummary(summary)

	if bad := suite.Failures + suite.Errors; bad > 0 {
		t.Errorf("%d conformance checks failed; failing lines:\n%s", bad, failingLines(stdout.String()))
	}
	if suite.Skipped > 0 {
		t.Logf("skipped checks:\n%s", skippedLines(stdout.String()))
	}
	if suite.Tests == 0 {
		t.Errorf("conformance ran no checks\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if runErr != nil && !t.Failed() {
		t.Errorf("conformance exited with %v although junit.xml reports no failures\nstderr:\n%s", runErr, stderr.String())
	}
}

// findConformance looks for the conformance binary in $PATH, then in each
// $(go env GOPATH)/bin.
func findConformance() (string, error) {
	if p, err := exec.LookPath("conformance"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("not in $PATH, and go env GOPATH: %w", err)
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", "conformance")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("not in $PATH nor in $(go env GOPATH)/bin")
}

// junitSuite is the part of the suite's junit.xml the test reads.
type junitSuite struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
}

// readJUnit sums the testsuite elements of a junit.xml report.
func readJUnit(path string) (junitSuite, error) {
	var doc struct {
		Suites []junitSuite `xml:"testsuite"`
	}
	var sum junitSuite
	data, err := os.ReadFile(path)
	if err != nil {
		return sum, err
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return sum, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(doc.Suites) == 0 {
		return sum, fmt.Errorf("%s has no testsuite", path)
	}
	for _, s := range doc.Suites {
		sum.Tests += s.Tests
		sum.Failures += s.Failures
		sum.Errors += s.Errors
		sum.Skipped += s.Skipped
		sum.Disabled += s.Disabled
	}
	return sum, nil
}

// failingLines returns the lines of the suite's report that end in FAIL or
// Error, indented as the suite printed them.
func failingLines(stdout string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if s := strings.TrimSpace(line); strings.HasSuffix(s, "FAIL") || strings.HasSuffix(s, "Error") {
			out.WriteString(line + "\n")
		}
	}
	if out.Len() == 0 {
		return "(no FAIL or Error line in stdout)\n" + stdout
	}
	return out.String()
}

func withoutPrefix(env []string, prefix string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}
