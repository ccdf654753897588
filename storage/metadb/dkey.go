package metadb

import (
	"crypto/sha256"

	"github.com/opencontainers/go-digest"
)

// A dkey is a manifest digest as the index keys it: the 32 bytes of a
// sha256 digest, or, for any other digest string (another algorithm,
// upper-case hex), the sha256 of the string, whose text the state keeps
// aside (state.odd). Keys hold no pointers, so maps of them and of
// pointer-free values are not scanned by the garbage collector: at a
// million manifests, marking digest strings cost more CPU than the
// requests themselves.
type dkey [32]byte

const sha256Prefix = "sha256:"

// keyOf returns the key of d; plain is false when d is not a canonical
// sha256 digest (its key is then the hash of its text).
func keyOf(d digest.Digest) (k dkey, plain bool) {
	s := string(d)
	if len(s) == len(sha256Prefix)+64 && s[:len(sha256Prefix)] == sha256Prefix {
		ok := true
		for i := range k {
			hi, ok1 := unhex(s[len(sha256Prefix)+2*i])
			lo, ok2 := unhex(s[len(sha256Prefix)+2*i+1])
			ok = ok && ok1 && ok2
			k[i] = hi<<4 | lo
		}
		if ok {
			return k, true
		}
	}
	return sha256.Sum256([]byte(s)), false
}

// unhex decodes one lower-case hex digit: upper case would not format back
// to the same text.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// format returns the canonical sha256 digest of k.
func (k dkey) format() digest.Digest {
	const hexDigits = "0123456789abcdef"
	b := make([]byte, len(sha256Prefix)+64)
	copy(b, sha256Prefix)
	for i, c := range k {
		b[len(sha256Prefix)+2*i] = hexDigits[c>>4]
		b[len(sha256Prefix)+2*i+1] = hexDigits[c&0xf]
	}
	return digest.Digest(b)
}

// dkeyOf returns the key of d.
func dkeyOf(d digest.Digest) dkey {
	k, _ := keyOf(d)
	return k
}
