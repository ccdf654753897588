package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/atollhq/atoll/api/auth"
)

func TestHtpasswdCommand(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		stdin    string
		user     string
		password string // "" when the command must fail
	}{
		{"arguments", []string{"alice", "s3cret pass"}, "", "alice", "s3cret pass"},
		{"stdin", []string{"-stdin", "bob"}, "from stdin\r\nignored\n", "bob", "from stdin"},
		{"stdin without newline", []string{"-stdin", "bob"}, "pw", "bob", "pw"},
		{"no password", []string{"alice"}, "", "", ""},
		{"stdin and argument", []string{"-stdin", "alice", "pw"}, "pw\n", "", ""},
		{"empty stdin", []string{"-stdin", "alice"}, "", "", ""},
		{"colon in user", []string{"a:b", "pw"}, "", "", ""},
		{"too long", []string{"alice", strings.Repeat("x", 73)}, "", "", ""},
	} {
		var out, errOut bytes.Buffer
		err := htpasswdFrom(strings.NewReader(tt.stdin), tt.args, &out, &errOut)
		if tt.password == "" {
			if err == nil {
				t.Errorf("%s: succeeded: %q", tt.name, out.String())
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		line := out.String()
		user, hash, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		if user != tt.user || !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("%s: line %q", tt.name, line)
		}
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 10 {
			t.Errorf("%s: cost %d, %v", tt.name, cost, err)
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(tt.password)) != nil {
			t.Errorf("%s: hash does not verify", tt.name)
		}
		users, err := auth.ParseHtpasswd(strings.NewReader(line))
		if err != nil || !users.Verify(tt.user, tt.password) || users.Verify(tt.user, tt.password+"x") {
			t.Errorf("%s: api/auth does not load it: %v", tt.name, err)
		}
	}
}

func TestHtpasswdCommandArgs(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := htpasswdCommand([]string{"carol", "pw"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "carol:$2") {
		t.Errorf("htpasswd carol pw: %v %q", err, out.String())
	}
	if err := htpasswdCommand([]string{"-h"}, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "-stdin") {
		t.Errorf("-h: %v %q", err, errOut.String())
	}
}
