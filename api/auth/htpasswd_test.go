package auth

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseHtpasswd(t *testing.T) {
	const hash = "$2y$05$Tdq5qChBrRwWrfCZ3vzZ6.5N.Y4hykx6qHJcKBdVl1HhQp2HtA1M6"
	for _, tt := range []struct {
		name, file string
		users      int
		err        string
	}{
		{"empty", "", 0, ""},
		{"comments and blanks", "# users\n\n  alice:" + hash + "  \n", 1, ""},
		{"all bcrypt prefixes", "a:" + hash + "\nb:$2a$" + hash[4:] + "\nc:$2b$" + hash[4:] + "\n", 3, ""},
		{"no colon", "alice\n", 0, "line 1"},
		{"no user", ":" + hash + "\n", 0, "line 1"},
		{"md5", "ok:" + hash + "\nbob:$apr1$x$y\n", 0, "line 2: user \"bob\": only bcrypt"},
		{"sha1", "bob:{SHA}abc\n", 0, "only bcrypt"},
		{"truncated bcrypt", "bob:$2y$05$abc\n", 0, "line 1"},
	} {
		users, err := ParseHtpasswd(strings.NewReader(tt.file))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
		case tt.err == "" && len(users) != tt.users:
			t.Errorf("%s: %d users, want %d", tt.name, len(users), tt.users)
		}
	}
}

func TestBasicPasswords(t *testing.T) {
	a, _ := newAuth(t, Config{Htpasswd: HtpasswdConfig{Realm: "r", Path: writeHtpasswd(t, "", map[string]string{"alice": "s3cret"})}})
	srv := serve(t, a)
	for _, tt := range []struct {
		name, auth string
		status     int
		body       string
	}{
		{"good", basic("alice", "s3cret"), 200, "alice|"},
		{"good again (cached)", basic("alice", "s3cret"), 200, "alice|"},
		{"bad password", basic("alice", "s3cre"), 401, ""},
		{"cached password with other user", basic("bob", "s3cret"), 401, ""},
		{"unknown user", basic("mallory", "x"), 401, ""},
		{"empty user", basic("", "s3cret"), 401, ""},
		{"not base64", "Basic !!!", 401, ""},
		{"bearer in basic mode", "Bearer abc", 401, ""},
	} {
		resp, body := do(t, "GET", srv.URL+"/v2/x/tags/list", nil, "Authorization", tt.auth)
		if resp.StatusCode != tt.status || tt.body != "" && body != tt.body {
			t.Errorf("%s: %s %q", tt.name, resp.Status, body)
		}
		if tt.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="r"` {
			t.Errorf("%s: challenge %q", tt.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestHtpasswdReload(t *testing.T) {
	path := writeHtpasswd(t, "", map[string]string{"alice": "one"})
	a, clk := newAuth(t, Config{Htpasswd: HtpasswdConfig{Path: path}})
	login := func(user, pass string) bool { return a.users.authenticate(user, pass, clk.now()) }
	if !login("alice", "one") {
		t.Fatal("initial password refused")
	}
	// Replace the file; force a distinct mtime, as a fast rewrite may not
	// move it on coarse-grained file systems.
	writeHtpasswd(t, path, map[string]string{"alice": "two", "bob": "three"})
	mtime := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if !login("alice", "one") {
		t.Error("file reread within a second of the last check")
	}
	clk.add(1100 * time.Millisecond)
	if login("alice", "one") || !login("alice", "two") || !login("bob", "three") {
		t.Error("changed file not picked up")
	}
	// A broken file keeps the last good contents.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	if !login("bob", "three") {
		t.Error("broken file replaced good contents")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	if !login("bob", "three") {
		t.Error("removed file replaced good contents")
	}
	// Back again: users removed from the file are refused.
	writeHtpasswd(t, path, map[string]string{"carol": "four"})
	clk.add(2 * time.Second)
	if login("bob", "three") || !login("carol", "four") {
		t.Error("recreated file not picked up")
	}
}
