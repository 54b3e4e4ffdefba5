package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/internal/atomicfile"
)

// DiskMetadata is a Metadata in a directory, for a registry without a database: the whole
// index lives in memory under one mutex, which makes every method atomic, and is rewritten to
// <dir>/index.json (through a rename) after each change; manifest bodies are files of their own
// under <dir>/manifests, named by digest. It suits thousands of manifests, not millions.
type DiskMetadata struct {
	dir   string
	mu    sync.Mutex
	st    *diskState
	saved []byte // the index as last written, to roll back a change that could not be written
}

var _ Metadata = (*DiskMetadata)(nil)

type diskState struct {
	Repos   map[string]*diskRepo `json:"repositories"`
	Uploads map[string]*Upload   `json:"uploads"`
}

type diskRepo struct {
	Manifests map[Digest]*diskManifest `json:"manifests"`
	Tags      map[string]Digest        `json:"tags"`
	Links     map[Digest]diskLink      `json:"links"`
}

type diskManifest struct {
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	Blobs        []Ref             `json:"blobs,omitempty"`
	Manifests    []Ref             `json:"manifests,omitempty"`
	Subject      Digest            `json:"subject,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type diskLink struct {
	Size   int64     `json:"size"`
	Linked time.Time `json:"linked"`
}

// OpenDiskMetadata opens (creating it) the metadata in dir.
func OpenDiskMetadata(dir string) (*DiskMetadata, error) {
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o700); err != nil {
		return nil, err
	}
	m := &DiskMetadata{dir: dir}
	b, err := os.ReadFile(m.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		b = []byte("{}")
	} else if err != nil {
		return nil, err
	}
	if m.st, err = decodeState(b); err != nil {
		return nil, err
	}
	m.saved = b
	return m, nil
}

func decodeState(b []byte) (*diskState, error) {
	st := &diskState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if st.Repos == nil {
		st.Repos = map[string]*diskRepo{}
	}
	if st.Uploads == nil {
		st.Uploads = map[string]*Upload{}
	}
	return st, nil
}

func (m *DiskMetadata) indexPath() string { return filepath.Join(m.dir, "index.json") }

func (m *DiskMetadata) bodyPath(d Digest) string {
	return filepath.Join(m.dir, "manifests", d.Algorithm(), d.Hex())
}

// writeFileAtomic replaces path with data, so readers and crashes see the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	return atelier.StorageFull(atomicfile.WriteFile(path, data, 0o600))
}

// update runs change on the state and writes it; change must fail before changing anything.
// When the write fails the state goes back to what was last written.
func (m *DiskMetadata) update(change func(st *diskState) (bool, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed, err := change(m.st)
	if err != nil || !changed {
		return err
	}
	for name, r := range m.st.Repos {
		if len(r.Manifests) == 0 && len(r.Tags) == 0 && len(r.Links) == 0 {
			delete(m.st.Repos, name)
		}
	}
	b, err := json.Marshal(m.st)
	if err == nil {
		err = writeFileAtomic(m.indexPath(), b)
	}
	if err != nil {
		if st, derr := decodeState(m.saved); derr == nil {
			m.st = st
		}
		return err
	}
	m.saved = b
	return nil
}

// view runs read on the state under the lock.
func (m *DiskMetadata) view(read func(st *diskState) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return read(m.st)
}

func (st *diskState) repo(name string) *diskRepo {
	r := st.Repos[name]
	if r == nil {
		r = &diskRepo{Manifests: map[Digest]*diskManifest{}, Tags: map[string]Digest{}, Links: map[Digest]diskLink{}}
		st.Repos[name] = r
	}
	return r
}

// lookup returns a repository without creating it; a missing one reads as empty.
func (st *diskState) lookup(name string) *diskRepo {
	if r := st.Repos[name]; r != nil {
		return r
	}
	return &diskRepo{}
}

func (m *DiskMetadata) PutManifest(ctx context.Context, repo string, man *Manifest, tags []string) error {
	return m.update(func(st *diskState) (bool, error) {
		r := st.lookup(repo)
		for _, ref := range man.Blobs {
			l, ok := r.Links[ref.Digest]
			if !ok {
				return false, atelier.Errorf(atelier.ENOTFOUND, "the manifest references blob %s, which repository %s does not hold: push it first", ref.Digest, repo)
			} else if l.Size != ref.Size {
				return false, atelier.Errorf(atelier.EINVALID, "the manifest gives blob %s a size of %d bytes, but it has %d", ref.Digest, ref.Size, l.Size)
			}
		}
		for _, ref := range man.Manifests {
			c, ok := r.Manifests[ref.Digest]
			if !ok {
				return false, atelier.Errorf(atelier.ENOTFOUND, "the index references manifest %s, which repository %s does not hold: push it first", ref.Digest, repo)
			} else if c.Size != ref.Size {
				return false, atelier.Errorf(atelier.EINVALID, "the index gives manifest %s a size of %d bytes, but it has %d", ref.Digest, ref.Size, c.Size)
			}
		}
		if _, err := os.Stat(m.bodyPath(man.Digest)); err != nil {
			if err := os.MkdirAll(filepath.Dir(m.bodyPath(man.Digest)), 0o700); err != nil {
				return false, atelier.StorageFull(err)
			}
			if err := writeFileAtomic(m.bodyPath(man.Digest), man.Body); err != nil {
				return false, err
			}
		}
		r = st.repo(repo)
		r.Manifests[man.Digest] = &diskManifest{
			MediaType: man.MediaType, Size: int64(len(man.Body)), Blobs: man.Blobs, Manifests: man.Manifests,
			Subject: man.Subject, ArtifactType: man.ArtifactType, Annotations: man.Annotations,
		}
		for _, t := range tags {
			r.Tags[t] = man.Digest
		}
		return true, nil
	})
}

func (m *DiskMetadata) Manifest(ctx context.Context, repo string, d Digest) (*Manifest, error) {
	var man *Manifest
	err := m.view(func(st *diskState) error {
		rec, ok := st.lookup(repo).Manifests[d]
		if !ok {
			return atelier.Errorf(atelier.ENOTFOUND, "manifest %s is not in repository %s", d, repo)
		}
		body, err := os.ReadFile(m.bodyPath(d))
		if err != nil {
			return err
		}
		man = &Manifest{
			Digest: d, MediaType: rec.MediaType, Body: body, Blobs: slices.Clone(rec.Blobs), Manifests: slices.Clone(rec.Manifests),
			Subject: rec.Subject, ArtifactType: rec.ArtifactType, Annotations: maps.Clone(rec.Annotations),
		}
		return nil
	})
	return man, err
}

func (m *DiskMetadata) Tag(ctx context.Context, repo, tag string) (Digest, error) {
	var d Digest
	err := m.view(func(st *diskState) error {
		var ok bool
		if d, ok = st.lookup(repo).Tags[tag]; !ok {
			return atelier.Errorf(atelier.ENOTFOUND, "repository %s has no tag %q", repo, tag)
		}
		return nil
	})
	return d, err
}

func (m *DiskMetadata) DeleteManifest(ctx context.Context, repo string, d Digest) error {
	err := m.update(func(st *diskState) (bool, error) {
		r := st.lookup(repo)
		if _, ok := r.Manifests[d]; !ok {
			return false, atelier.Errorf(atelier.ENOTFOUND, "manifest %s is not in repository %s", d, repo)
		}
		for _, idx := range slices.Sorted(maps.Keys(r.Manifests)) {
			if slices.ContainsFunc(r.Manifests[idx].Manifests, func(c Ref) bool { return c.Digest == d }) {
				return false, atelier.Errorf(atelier.ECONFLICT, "manifest %s is listed by index %s of %s: delete the index first", d, idx, repo)
			}
		}
		delete(r.Manifests, d)
		maps.DeleteFunc(r.Tags, func(_ string, td Digest) bool { return td == d })
		return true, nil
	})
	if err != nil {
		return err
	}
	// The body goes once no repository holds the manifest.
	return m.view(func(st *diskState) error {
		for _, r := range st.Repos {
			if _, ok := r.Manifests[d]; ok {
				return nil
			}
		}
		if err := os.Remove(m.bodyPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

func (m *DiskMetadata) DeleteTag(ctx context.Context, repo, tag string) error {
	return m.update(func(st *diskState) (bool, error) {
		r := st.lookup(repo)
		if _, ok := r.Tags[tag]; !ok {
			return false, atelier.Errorf(atelier.ENOTFOUND, "repository %s has no tag %q", repo, tag)
		}
		delete(r.Tags, tag)
		return true, nil
	})
}

// pageOf returns the sorted names after after, at most limit of them (all when limit < 0).
func pageOf(names []string, after string, limit int) []string {
	slices.Sort(names)
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	names = names[i:]
	if limit >= 0 && len(names) > limit {
		names = names[:limit]
	}
	return slices.Clone(names)
}

func (m *DiskMetadata) Tags(ctx context.Context, repo, after string, limit int) ([]string, error) {
	var tags []string
	err := m.view(func(st *diskState) error {
		r, ok := st.Repos[repo]
		if !ok {
			return atelier.Errorf(atelier.ENOTFOUND, "repository %s does not exist", repo)
		}
		tags = pageOf(slices.Collect(maps.Keys(r.Tags)), after, limit)
		return nil
	})
	return tags, err
}

func (m *DiskMetadata) Referrers(ctx context.Context, repo string, d Digest) ([]Descriptor, error) {
	var refs []Descriptor
	err := m.view(func(st *diskState) error {
		r := st.lookup(repo)
		for _, md := range slices.Sorted(maps.Keys(r.Manifests)) {
			if rec := r.Manifests[md]; rec.Subject == d {
				refs = append(refs, Descriptor{MediaType: rec.MediaType, Digest: md, Size: rec.Size,
					ArtifactType: rec.ArtifactType, Annotations: maps.Clone(rec.Annotations)})
			}
		}
		return nil
	})
	return refs, err
}

func (m *DiskMetadata) Repositories(ctx context.Context, after string, limit int) ([]string, error) {
	var names []string
	err := m.view(func(st *diskState) error {
		names = pageOf(slices.Collect(maps.Keys(st.Repos)), after, limit)
		return nil
	})
	return names, err
}

func (m *DiskMetadata) LinkBlob(ctx context.Context, repo string, d Digest, size int64, at time.Time) error {
	return m.update(func(st *diskState) (bool, error) {
		st.repo(repo).Links[d] = diskLink{Size: size, Linked: at}
		return true, nil
	})
}

func (m *DiskMetadata) BlobLink(ctx context.Context, repo string, d Digest) (int64, error) {
	var size int64
	err := m.view(func(st *diskState) error {
		l, ok := st.lookup(repo).Links[d]
		if !ok {
			return atelier.Errorf(atelier.ENOTFOUND, "blob %s is not in repository %s", d, repo)
		}
		size = l.Size
		return nil
	})
	return size, err
}

func (m *DiskMetadata) UnlinkBlob(ctx context.Context, repo string, d Digest) error {
	return m.update(func(st *diskState) (bool, error) {
		r := st.lookup(repo)
		if _, ok := r.Links[d]; !ok {
			return false, atelier.Errorf(atelier.ENOTFOUND, "blob %s is not in repository %s", d, repo)
		}
		for _, md := range slices.Sorted(maps.Keys(r.Manifests)) {
			if slices.ContainsFunc(r.Manifests[md].Blobs, func(b Ref) bool { return b.Digest == d }) {
				return false, atelier.Errorf(atelier.ECONFLICT, "blob %s is used by manifest %s of %s: delete the manifest first", d, md, repo)
			}
		}
		delete(r.Links, d)
		return true, nil
	})
}

func (m *DiskMetadata) BlobRepositories(ctx context.Context, d Digest) ([]string, error) {
	var repos []string
	err := m.view(func(st *diskState) error {
		for name, r := range st.Repos {
			if _, ok := r.Links[d]; ok {
				repos = append(repos, name)
			}
		}
		slices.Sort(repos)
		return nil
	})
	return repos, err
}

func cloneUpload(u *Upload) *Upload {
	c := *u
	c.Chunks = slices.Clone(u.Chunks)
	return &c
}

func (m *DiskMetadata) CreateUpload(ctx context.Context, u *Upload) error {
	return m.update(func(st *diskState) (bool, error) {
		if _, ok := st.Uploads[u.ID]; ok {
			return false, atelier.Errorf(atelier.ECONFLICT, "upload %s exists", u.ID)
		}
		st.Uploads[u.ID] = cloneUpload(u)
		return true, nil
	})
}

func uploadNotFound(id string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "no upload session %q", id)
}

func (m *DiskMetadata) Upload(ctx context.Context, id string) (*Upload, error) {
	var u *Upload
	err := m.view(func(st *diskState) error {
		cur, ok := st.Uploads[id]
		if !ok {
			return uploadNotFound(id)
		}
		u = cloneUpload(cur)
		return nil
	})
	return u, err
}

func (m *DiskMetadata) AppendUpload(ctx context.Context, id string, offset int64, chunk Ref, at time.Time) (*Upload, error) {
	var u *Upload
	err := m.update(func(st *diskState) (bool, error) {
		cur, ok := st.Uploads[id]
		if !ok {
			return false, uploadNotFound(id)
		} else if cur.Size != offset {
			return false, atelier.Errorf(atelier.ECONFLICT, "upload %s has %d bytes, not %d", id, cur.Size, offset)
		}
		cur.Chunks = append(cur.Chunks, chunk)
		cur.Size += chunk.Size
		cur.Updated = at
		u = cloneUpload(cur)
		return true, nil
	})
	return u, err
}

func (m *DiskMetadata) DeleteUpload(ctx context.Context, id string) error {
	return m.update(func(st *diskState) (bool, error) {
		if _, ok := st.Uploads[id]; !ok {
			return false, uploadNotFound(id)
		}
		delete(st.Uploads, id)
		return true, nil
	})
}

func (m *DiskMetadata) ExpireUploads(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := m.update(func(st *diskState) (bool, error) {
		for id, u := range st.Uploads {
			if u.Updated.Before(before) {
				delete(st.Uploads, id)
				n++
			}
		}
		return n > 0, nil
	})
	return n, err
}

func (m *DiskMetadata) ReleaseBlob(ctx context.Context, d Digest, linkedBefore time.Time) (bool, error) {
	released := false
	err := m.update(func(st *diskState) (bool, error) {
		for _, u := range st.Uploads {
			if slices.ContainsFunc(u.Chunks, func(c Ref) bool { return c.Digest == d }) {
				return false, nil
			}
		}
		linked := false
		for _, r := range st.Repos {
			if l, ok := r.Links[d]; ok {
				if !l.Linked.Before(linkedBefore) {
					return false, nil
				}
				linked = true
			}
			for _, rec := range r.Manifests {
				if slices.ContainsFunc(rec.Blobs, func(b Ref) bool { return b.Digest == d }) {
					return false, nil
				}
			}
		}
		for _, r := range st.Repos {
			delete(r.Links, d)
		}
		released = true
		return linked, nil
	})
	return released, err
}
