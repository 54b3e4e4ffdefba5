// Package secret encrypts secrets at rest (datastore credentials) with AES-256-GCM under the
// server's master key.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/atelier-ml/atelier"
)

var _ atelier.SecretBox = (*Box)(nil)

// KeySize is the master key's length: 32 bytes, AES-256.
const KeySize = 32

// version 1 of the sealed format: version | key id (4) | nonce (12) | ciphertext and tag.
const (
	version1  = 1
	keyIDSize = 4
	header    = 1 + keyIDSize
)

// Box seals and opens secrets under one master key.
type Box struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
}

// New returns a Box over a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: the master key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	b := &Box{aead: aead}
	// The key id tells a wrong key from a damaged ciphertext; it reveals nothing of the key.
	id := sha256.Sum256(append([]byte("atelier key id\x00"), key...))
	copy(b.keyID[:], id[:])
	return b, nil
}

// Seal encrypts plaintext, bound to aad.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, header, header+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	out[0] = version1
	copy(out[1:], b.keyID[:])
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return b.aead.Seal(out, nonce, plaintext, aad), nil
}

// ErrWrongKey is returned for a secret sealed under another master key.
var ErrWrongKey = errors.New("secret: sealed under another master key (was ATELIER_MASTER_KEY or master.key changed?)")

// Open decrypts what Seal made with the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < header+ns+b.aead.Overhead() || sealed[0] != version1 {
		return nil, errors.New("secret: not a sealed secret")
	}
	if string(sealed[1:header]) != string(b.keyID[:]) {
		return nil, ErrWrongKey
	}
	nonce := sealed[header : header+ns]
	plain, err := b.aead.Open(nil, nonce, sealed[header+ns:], aad)
	if err != nil {
		return nil, errors.New("secret: the sealed secret is damaged or belongs to another record")
	}
	return plain, nil
}

// EnvKey is the environment variable that holds the master key, base64 of 32 bytes.
const EnvKey = "ATELIER_MASTER_KEY"

// LoadKey returns the master key: from env (base64 of 32 bytes) when it is set, else from the
// file at path, created with a random key (mode 0600) when missing.
func LoadKey(path, env string) ([]byte, error) {
	if env = strings.TrimSpace(env); env != "" {
		key, err := base64.StdEncoding.DecodeString(env)
		if err != nil {
			key, err = base64.RawURLEncoding.DecodeString(env)
		}
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("%s must be the base64 of %d random bytes (e.g. openssl rand -base64 32)", EnvKey, KeySize)
		}
		return key, nil
	}
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("%s is not a master key (base64 of %d bytes)", path, KeySize)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: two servers starting on one data directory must not each write their own key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey(path, "")
	} else if err != nil {
		return nil, err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return key, nil
}
