package secret_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/atelier-ml/atelier/secret"
)

func mustBox(t *testing.T, key []byte) *secret.Box {
	t.Helper()
	b, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := mustBox(t, bytes.Repeat([]byte{7}, 32))
	plain := []byte(`{"secret_key":"hunter2"}`)
	sealed, err := b.Seal(plain, []byte("datastore:default/s3"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatalf("the sealed form contains the plaintext")
	}
	again, _ := b.Seal(plain, []byte("datastore:default/s3"))
	if bytes.Equal(sealed, again) {
		t.Errorf("two seals of one plaintext are equal: the nonce is not random")
	}
	got, err := b.Open(sealed, []byte("datastore:default/s3"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	for name, tc := range map[string]struct {
		sealed []byte
		aad    string
		box    *secret.Box
	}{
		"other record": {sealed, "datastore:default/other", b},
		"damaged":      {append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), "datastore:default/s3", b},
		"truncated":    {sealed[:10], "datastore:default/s3", b},
		"empty":        {nil, "datastore:default/s3", b},
		"other key":    {sealed, "datastore:default/s3", mustBox(t, bytes.Repeat([]byte{8}, 32))},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := tc.box.Open(tc.sealed, []byte(tc.aad)); err == nil {
				t.Fatalf("Open = %q, want an error", got)
			} else if name == "other key" && !errors.Is(err, secret.ErrWrongKey) {
				t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	k1, err := secret.LoadKey(path, "")
	if err != nil || len(k1) != 32 {
		t.Fatalf("LoadKey (create) = %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	k2, err := secret.LoadKey(path, "")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("LoadKey (reload) differs: %v", err)
	}
	envKey := bytes.Repeat([]byte{1}, 32)
	k3, err := secret.LoadKey(path, base64.StdEncoding.EncodeToString(envKey))
	if err != nil || !bytes.Equal(k3, envKey) {
		t.Fatalf("LoadKey (env) = %x, %v", k3, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := secret.LoadKey(path, bad); err == nil {
			t.Errorf("LoadKey(env %q) succeeded", bad)
		}
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := secret.LoadKey(path, ""); err == nil {
		t.Errorf("LoadKey of a damaged key file succeeded")
	}
}
