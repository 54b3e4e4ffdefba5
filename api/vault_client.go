package api

import (
	"context"
	"net/url"

	"github.com/atelier-ml/atelier"
)

var _ atelier.SecretService = (*Client)(nil)

func secretPath(workspace, name string) string {
	return wsPath(workspace, "secrets", url.PathEscape(name))
}

func (c *Client) SetSecret(ctx context.Context, workspace, name, value string) (*atelier.Secret, error) {
	if err := atelier.ValidateSecretName(name); err != nil {
		return nil, err
	}
	var s atelier.Secret
	return &s, c.call(ctx, "PUT", secretPath(workspace, name), nil, SecretPut{Value: value}, &s)
}

func (c *Client) ListSecrets(ctx context.Context, workspace string) ([]*atelier.Secret, error) {
	var out SecretList
	return out.Secrets, c.call(ctx, "GET", wsPath(workspace, "secrets"), nil, nil, &out)
}

func (c *Client) DeleteSecret(ctx context.Context, workspace, name string) error {
	if err := atelier.ValidateSecretName(name); err != nil {
		return err
	}
	return c.call(ctx, "DELETE", secretPath(workspace, name), nil, nil, nil)
}
