package registry

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"

	"github.com/atelier-ml/atelier"
)

// Digest names content: "<algorithm>:<lowercase hex>", sha256 or sha512 (the algorithms the OCI
// image spec registers).
type Digest string

// The registered algorithms and the length of their hex encodings.
var algorithms = map[string]int{"sha256": 64, "sha512": 128}

// Canonical is the algorithm used when a client names none.
const Canonical = "sha256"

// ParseDigest checks s and returns it as a Digest; EINVALID names what is wrong.
func ParseDigest(s string) (Digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return "", atelier.Errorf(atelier.EINVALID, "invalid digest %q: want <algorithm>:<hex>", s)
	}
	n, known := algorithms[alg]
	if !known {
		return "", atelier.Errorf(atelier.EINVALID, "invalid digest %q: unsupported algorithm %q (use sha256 or sha512)", s, alg)
	}
	if len(enc) != n || !isLowerHex(enc) {
		return "", atelier.Errorf(atelier.EINVALID, "invalid digest %q: a %s digest has %d lowercase hex characters", s, alg, n)
	}
	return Digest(s), nil
}

// ValidAlgorithm reports whether alg is an algorithm the registry computes.
func ValidAlgorithm(alg string) bool {
	_, ok := algorithms[alg]
	return ok
}

// Algorithm returns the digest's algorithm ("sha256").
func (d Digest) Algorithm() string {
	alg, _, _ := strings.Cut(string(d), ":")
	return alg
}

// Hex returns the encoded part of the digest.
func (d Digest) Hex() string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

func (d Digest) String() string { return string(d) }

// NewHash returns a hash for alg, which must be valid.
func NewHash(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// DigestOf returns the digest of b with algorithm alg.
func DigestOf(alg string, b []byte) Digest {
	h := NewHash(alg)
	h.Write(b)
	return SumDigest(alg, h)
}

// SumDigest returns the digest a hash made by NewHash(alg) has computed.
func SumDigest(alg string, h hash.Hash) Digest {
	return Digest(alg + ":" + hex.EncodeToString(h.Sum(nil)))
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
