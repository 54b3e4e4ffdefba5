package build

import (
	"context"
	"strings"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/oci/registry"
)

var _ atelier.PushedImageLister = (*Workspaces)(nil)

// ListPushed lists the tags of the workspace's repositories as images of source "pushed": name
// the repository's name after "<workspace>/", Tag the tag, Version 0, Status Succeeded (it is
// there to pull), no models, CreatedAt when the tag was pushed. The caller leaves out the tags
// that are its built versions. Without a metadata store that lists tags it lists nothing.
func (w *Workspaces) ListPushed(ctx context.Context, workspace, name string) ([]*atelier.Image, error) {
	lister, ok := w.Metadata.(registry.TagLister)
	if !ok {
		return nil, nil
	}
	prefix := workspace + "/"
	if name != "" {
		prefix += name
	}
	tagged, err := lister.ListTagged(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var list []*atelier.Image
	for _, t := range tagged {
		n := strings.TrimPrefix(t.Repo, workspace+"/")
		if name != "" && n != name {
			continue // another repository whose name starts with name
		}
		list = append(list, &atelier.Image{
			Workspace: workspace, Name: n, Source: atelier.ImagePushed, Tag: t.Tag, Status: atelier.ImageSucceeded,
			Digest: string(t.Digest), Size: t.Size, Location: t.Repo + ":" + t.Tag, CreatedAt: t.TaggedAt,
			Models: []atelier.ImageModel{}, Tags: map[string]string{},
		})
	}
	return list, nil
}
