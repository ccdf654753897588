package auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// dummyHash is compared against for unknown users, so that they take as
// long as known ones (bcrypt, cost 10).
const dummyHash = "$2a$10$waVG1bvNfZnY9h59hdnSk.meCaSfMKhtD0pFd2ma/8V9lz6hinMPG"

// Passwords are the bcrypt hashes of an htpasswd file, by user.
type Passwords map[string][]byte

// ParseHtpasswd reads an htpasswd file: "user:hash" lines, blank lines and
// "#" comments. Only bcrypt hashes ($2y$, $2a$, $2b$) are accepted, as in
// registry:2; any other line is an error naming its number.
func ParseHtpasswd(r io.Reader) (Passwords, error) {
	p := Passwords{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd line %d: not user:hash", n)
		}
		if !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") {
			return nil, fmt.Errorf("htpasswd line %d: user %q: only bcrypt hashes are supported", n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd line %d: user %q: %w", n, user, err)
		}
		p[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return p, nil
}

// Verify reports whether password is user's. An unknown user costs one
// bcrypt comparison too.
func (p Passwords) Verify(user, password string) bool {
	hash, ok := p[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// htpasswdFile is an htpasswd file reread when its modification time or
// size changes, checked at most once a second, on use. Successful logins
// are remembered (as an HMAC under a per-process key) until the file
// changes, so a client sending Basic credentials on every request pays
// bcrypt once.
type htpasswdFile struct {
	path string
	log  *slog.Logger
	key  []byte // HMAC key of the verified cache

	mu       sync.Mutex
	users    Passwords
	dummy    []byte // compared against for unknown users: the file's cost
	modTime  time.Time
	size     int64
	checked  time.Time
	verified map[[sha256.Size]byte]bool
}

// maxVerified bounds the cache of verified logins; it is emptied when full.
const maxVerified = 4096

func openHtpasswd(path string, log *slog.Logger) (*htpasswdFile, error) {
	h := &htpasswdFile{path: path, log: log, key: make([]byte, 32)}
	_, _ = rand.Read(h.key)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := h.load(fi, time.Now()); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return h, nil
}

// load reads the file described by fi; called with mu held (or before
// h is shared).
func (h *htpasswdFile) load(fi os.FileInfo, now time.Time) error {
	f, err := os.Open(h.path)
	if err != nil {
		return err
	}
	defer f.Close()
	users, err := ParseHtpasswd(f)
	if err != nil {
		return err
	}
	h.users, h.modTime, h.size, h.checked = users, fi.ModTime(), fi.Size(), now
	h.dummy = []byte(dummyHash)
	for _, hash := range users {
		if cost, _ := bcrypt.Cost(hash); cost != bcrypt.DefaultCost && cost <= 16 {
			h.dummy, _ = bcrypt.GenerateFromPassword(h.key, cost)
		}
		break // one entry tells the cost htpasswd -B was run with
	}
	h.verified = map[[sha256.Size]byte]bool{}
	return nil
}

// current returns the users, rereading the file if it changed. A file that
// vanished or no longer parses keeps the last good contents, with an error
// logged.
func (h *htpasswdFile) current(now time.Time) (Passwords, []byte, map[[sha256.Size]byte]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.checked) >= time.Second || now.Before(h.checked) {
		h.checked = now
		fi, err := os.Stat(h.path)
		switch {
		case err != nil:
			h.log.Error("htpasswd: keeping the last good contents", "path", h.path, "err", err)
		case !fi.ModTime().Equal(h.modTime) || fi.Size() != h.size:
			if err := h.load(fi, now); err != nil {
				h.log.Error("htpasswd: keeping the last good contents", "path", h.path, "err", err)
			} else {
				h.log.Info("htpasswd reloaded", "path", h.path, "users", len(h.users))
			}
		}
	}
	return h.users, h.dummy, h.verified
}

// authenticate reports whether user's password is right.
func (h *htpasswdFile) authenticate(user, password string, now time.Time) bool {
	users, dummy, verified := h.current(now)
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	h.mu.Lock()
	hit := verified[sum]
	h.mu.Unlock()
	if hit {
		return true
	}
	hash, ok := users[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummy, []byte(password))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	h.mu.Lock()
	if len(verified) >= maxVerified {
		clear(verified)
	}
	verified[sum] = true
	h.mu.Unlock()
	return true
}
