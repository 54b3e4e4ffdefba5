package api

import (
	"context"
	"net/url"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeTargetService = (*Client)(nil)

func (c *Client) CreateComputeTarget(ctx context.Context, workspace string, spec atelier.ComputeTargetSpec) (*atelier.ComputeTarget, error) {
	var t atelier.ComputeTarget
	return &t, c.call(ctx, "POST", wsPath(workspace, "compute"), nil, spec, &t)
}

func (c *Client) FindComputeTarget(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, error) {
	if err := atelier.ValidateName("compute target", name); err != nil {
		return nil, err
	}
	var t atelier.ComputeTarget
	return &t, c.call(ctx, "GET", wsPath(workspace, "compute", url.PathEscape(name)), nil, nil, &t)
}

func (c *Client) DetachComputeTarget(ctx context.Context, workspace, name string) error {
	if err := atelier.ValidateName("compute target", name); err != nil {
		return err
	}
	return c.call(ctx, "DELETE", wsPath(workspace, "compute", url.PathEscape(name)), nil, nil, nil)
}
