package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

var _ atelier.SecretService = (*Service)(nil)

// Who may use the vault (see vault.go of package atelier): Contributors and Owners set and
// delete secrets, as they register datastores with credentials; every member lists the names;
// a run's token may do neither, since the scheduler hands a run the values it asked for.

// secretAAD binds a sealed value to its workspace and name, so a value copied onto another
// record does not open.
func secretAAD(workspace, name string) []byte {
	return []byte("atelier secret\x00" + workspace + "\x00" + name)
}

// SetSecret creates or replaces a secret, sealed with the server's master key.
func (s *Data) SetSecret(ctx context.Context, workspace, name, value string) (*atelier.Secret, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := atelier.ValidateSecretName(name); err != nil {
		return nil, err
	}
	if err := atelier.ValidateSecretValue(value); err != nil {
		return nil, err
	}
	if s.Secrets == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot store secrets")
	}
	sealed, err := s.Secrets.Seal([]byte(value), secretAAD(workspace, name))
	if err != nil {
		return nil, err
	}
	return s.store.PutSecret(ctx, workspace, name, sealed)
}

// ListSecrets lists a workspace's secrets: names and dates, never values.
func (s *Data) ListSecrets(ctx context.Context, workspace string) ([]*atelier.Secret, error) {
	if err := s.authorizeListSecrets(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.ListSecrets(ctx, workspace)
}

// DeleteSecret deletes a secret. Runs already started keep the value they received; queued
// runs that name it fail when they start.
func (s *Data) DeleteSecret(ctx context.Context, workspace, name string) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	if err := atelier.ValidateSecretName(name); err != nil {
		return err
	}
	return s.store.DeleteSecret(ctx, workspace, name)
}

// checkRunSecrets checks that the secrets a submitted configuration names exist.
func (s *Data) checkRunSecrets(ctx context.Context, workspace string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	list, err := s.store.ListSecrets(ctx, workspace)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, sec := range list {
		have[sec.Name] = true
	}
	for _, name := range names {
		if !have[name] {
			return atelier.Errorf(atelier.EINVALID, "run config: secret %q does not exist in workspace %q (see 'atelier secret list')", name, workspace)
		}
	}
	return nil
}

// openRunSecrets decrypts the secrets a run's configuration names, for its executor. It does
// no authorization: the scheduler decided the run may start. Errors name the secret, never a
// value.
func (s *Data) openRunSecrets(ctx context.Context, workspace string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if s.Secrets == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot decrypt the run's secrets")
	}
	values := make(map[string]string, len(names))
	for _, name := range names {
		sealed, err := s.store.SealedSecret(ctx, workspace, name)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "secret %q was deleted after the run was submitted", name)
		} else if err != nil {
			return nil, err
		}
		plain, err := s.Secrets.Open(sealed, secretAAD(workspace, name))
		if err != nil {
			s.log.Error("opening a secret", "workspace", workspace, "secret", name, "err", err)
			return nil, atelier.Errorf(atelier.EUNAVAILABLE, "secret %q cannot be decrypted (was the server's master key changed?): set it again with 'atelier secret set %s'", name, name)
		}
		values[name] = string(plain)
	}
	return values, nil
}
