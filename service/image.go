package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ImageService = (*Service)(nil)

// Events of image builds.
const (
	EventImageStatus = "image.status"
	EventImageLog    = "image.log"
)

// ImageLogEvent is a piece of an image's build log as it is written.
type ImageLogEvent struct {
	Image  string `json:"image"` // name:version
	Offset int64  `json:"offset"`
	Text   string `json:"text"`
}

// DefaultMaxConcurrentBuilds is how many image builds a server runs at once.
const DefaultMaxConcurrentBuilds = 2

// CreateImage queues the build of an image: its models resolved (an alias or "latest" names
// the version it is now), its source directory and the files it names checked.
func (s *Images) CreateImage(ctx context.Context, workspace string, c atelier.ImageCreate) (*atelier.Image, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if s.Builder == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "this server builds no images (no image builder is configured)")
	}
	if c.Base == "" {
		// The workspace's default base, recorded as the image's base (else the server's).
		base, err := s.defaultBase(ctx, workspace)
		if err != nil {
			return nil, err
		}
		c.Base = base
	}
	snap, err := s.store.FindSnapshot(ctx, workspace, c.SnapshotID)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, atelier.Errorf(atelier.EINVALID, "snapshot %s not found: upload the source directory first", c.SnapshotID)
	} else if err != nil {
		return nil, err
	}
	if err := c.CheckFiles(snap); err != nil {
		return nil, err
	}
	if c.Conda != "" {
		if err := s.checkConda(ctx, workspace, c, snap); err != nil {
			return nil, err
		}
	}
	img := &atelier.Image{Name: c.Name, Description: c.Description, Tags: c.Tags, EntryScript: c.EntryScript,
		SnapshotID: c.SnapshotID, Requirements: c.Requirements, Conda: c.Conda, Base: c.Base}
	seen := map[atelier.ImageModel]bool{}
	for _, m := range c.Models {
		ref, _ := atelier.ParseModelRef(m)
		v, err := s.store.FindModelVersion(ctx, workspace, ref)
		if atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "model %s not found in workspace %q (see 'atelier model list')", m, workspace)
		} else if err != nil {
			return nil, err
		}
		if v.IsReference() {
			return nil, v.NotStored()
		}
		im := atelier.ImageModel{Name: v.Name, Version: v.Version}
		if seen[im] {
			return nil, atelier.Errorf(atelier.EINVALID, "model %s is listed twice", im)
		}
		seen[im] = true
		img.Models = append(img.Models, im)
	}
	if err := s.Builder.CheckBase(ctx, workspace, c.Base); err != nil {
		return nil, err
	}
	if err := s.store.CreateImage(ctx, workspace, img); err != nil {
		return nil, err
	}
	s.imageChanged(ctx, img)
	s.sched.poke()
	return img, nil
}

// FindImage returns an image (its latest version for a bare name).
func (s *Images) FindImage(ctx context.Context, workspace string, ref atelier.ImageRef) (*atelier.Image, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	return s.store.FindImage(ctx, workspace, ref)
}

// ListImages lists a workspace's images, newest first.
func (s *Images) ListImages(ctx context.Context, workspace string, q atelier.ImageQuery) ([]*atelier.Image, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	list, err := s.store.ListImages(ctx, workspace, q)
	if err != nil {
		return nil, err
	}
	// Tags other tools pushed are listed too, unless the query asks for what only built images
	// have (models, tags).
	lister, ok := s.Builder.(atelier.PushedImageLister)
	if !ok || q.Model != "" || len(q.Tags) > 0 {
		return list, nil
	}
	pushed, err := lister.ListPushed(ctx, workspace, q.Name)
	if err != nil {
		return nil, err
	}
	if len(pushed) == 0 {
		return list, nil
	}
	for _, p := range pushed {
		// A tag that is a built version's is that image.
		if v, err := strconv.ParseInt(p.Tag, 10, 64); err == nil && v > 0 && strconv.FormatInt(v, 10) == p.Tag {
			_, err := s.store.FindImage(ctx, workspace, atelier.ImageRef{Name: p.Name, Version: v})
			if err == nil {
				continue
			} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
				return nil, err
			}
		}
		list = append(list, p)
	}
	slices.SortStableFunc(list, func(a, b *atelier.Image) int { return b.CreatedAt.Compare(a.CreatedAt) })
	limit := q.Limit
	if limit <= 0 || limit > atelier.MaxPageSize {
		limit = atelier.DefaultPageSize
	}
	if len(list) > limit {
		list = list[:limit]
	}
	return list, nil
}

// ImageLog reads an image's build log from offset.
func (s *Images) ImageLog(ctx context.Context, workspace string, ref atelier.ImageRef, offset int64) (string, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return "", err
	}
	return s.store.ImageLog(ctx, workspace, ref, offset)
}

// DeleteImage removes an image version: its record, the model references that kept its models,
// and its tag and manifest in the registry.
func (s *Images) DeleteImage(ctx context.Context, workspace string, ref atelier.ImageRef) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	img, err := s.store.FindImage(ctx, workspace, ref)
	if err != nil {
		return err
	}
	if ref.Version == 0 {
		return atelier.Errorf(atelier.EINVALID, "name the version to delete: %s:%d", ref.Name, img.Version)
	}
	if err := s.store.DeleteImage(ctx, workspace, ref); err != nil {
		return err
	}
	if img.Status == atelier.ImageSucceeded && s.Builder != nil {
		if err := s.Builder.Delete(context.WithoutCancel(ctx), workspace, ref); err != nil && atelier.ErrorCode(err) != atelier.ENOTFOUND {
			// The record is gone; what is left in the registry is collected as garbage.
			s.log.Warn("deleting an image from the registry", "workspace", workspace, "image", ref.String(), "err", err)
		}
	}
	return nil
}

// ExportImage writes a built image as a tarball.
func (s *Images) ExportImage(ctx context.Context, workspace string, ref atelier.ImageRef, format string, w io.Writer) error {
	if err := s.authorize(ctx, workspace); err != nil {
		return err
	}
	if format != "docker" && format != "oci" {
		return atelier.Errorf(atelier.EINVALID, "unknown export format %q: docker (docker-archive) or oci (OCI layout)", format)
	}
	img, err := s.store.FindImage(ctx, workspace, ref)
	if err != nil {
		return err
	}
	if img.Status != atelier.ImageSucceeded {
		return atelier.Errorf(atelier.ECONFLICT, "image %s:%d is %s: only a built image can be exported", img.Name, img.Version, img.Status)
	}
	if s.Builder == nil {
		return atelier.Errorf(atelier.EUNAVAILABLE, "this server has no image registry")
	}
	return s.Builder.Export(ctx, workspace, atelier.ImageRef{Name: img.Name, Version: img.Version}, format, w)
}

// imageChanged tells watchers of an image's status and records its build as an activity.
func (s *Images) imageChanged(ctx context.Context, img *atelier.Image) {
	s.publish(img.Workspace, EventImageStatus, "", img)
	now := s.now().UTC()
	a := &atelier.Activity{ID: "image-" + img.Name + "-" + fmt.Sprint(img.Version), Workspace: img.Workspace, Kind: "image.build",
		Target: fmt.Sprintf("%s:%d", img.Name, img.Version), Message: string(img.Status), StartedAt: img.CreatedAt, UpdatedAt: now,
		EndedAt: img.EndedAt, Error: img.Error}
	switch img.Status {
	case atelier.ImageQueued:
		a.Status = atelier.ActivityQueued
	case atelier.ImageBuilding:
		a.Status = atelier.ActivityRunning
	case atelier.ImageSucceeded:
		a.Status, a.Percent = atelier.ActivitySucceeded, 100
	default:
		a.Status, a.Percent = atelier.ActivityFailed, 100
	}
	if err := s.store.PutActivity(context.WithoutCancel(ctx), a); err != nil {
		s.log.Warn("recording an image build's activity", "image", a.Target, "err", err)
	}
	s.publish(img.Workspace, atelier.EventActivity, "", a)
}

// builds are the image builds this server runs.
type builds struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc // lease id → cancel
	wg      sync.WaitGroup
}

func (s *Images) maxBuilds() int {
	if s.MaxConcurrentBuilds > 0 {
		return s.MaxConcurrentBuilds
	}
	return DefaultMaxConcurrentBuilds
}

// dispatchBuilds claims queued builds this server has room for and runs them.
func (s *Images) dispatchBuilds(ctx context.Context) {
	if s.Builder == nil || ctx.Err() != nil {
		return
	}
	s.builds.mu.Lock()
	free := s.maxBuilds() - len(s.builds.running)
	s.builds.mu.Unlock()
	if free <= 0 {
		return
	}
	imgs, err := s.store.ClaimImages(ctx, s.owner(), free, s.now().Add(s.leaseTTL()))
	if err != nil {
		s.log.Error("claiming image builds", "err", err)
		return
	}
	for _, img := range imgs {
		s.startBuild(ctx, img)
	}
}

func imageLease(img *atelier.Image) string {
	return fmt.Sprintf("%s/%s:%d", img.Workspace, img.Name, img.Version)
}

// startBuild runs a claimed build in the background.
func (s *Images) startBuild(ctx context.Context, img *atelier.Image) {
	id := imageLease(img)
	bctx, cancel := context.WithCancel(ctx)
	s.builds.mu.Lock()
	if s.builds.running == nil {
		s.builds.running = map[string]context.CancelFunc{}
	}
	s.builds.running[id] = cancel
	s.builds.mu.Unlock()
	s.imageChanged(ctx, img)
	s.log.Info("image build started", "workspace", img.Workspace, "image", img.Location)
	s.builds.wg.Add(1)
	go func() {
		defer s.builds.wg.Done()
		defer cancel()
		s.build(bctx, img)
		s.builds.mu.Lock()
		delete(s.builds.running, id)
		s.builds.mu.Unlock()
		if err := s.store.ReleaseLease(context.WithoutCancel(ctx), atelier.LeaseKindBuild, id, s.owner()); err != nil {
			s.log.Error("releasing an image build's lease", "image", id, "err", err)
		}
		s.sched.poke()
	}()
}

// build builds one image and records its end; stopped by the server's shutdown, the image goes
// back to the queue for the next server.
func (s *Images) build(ctx context.Context, img *atelier.Image) {
	bg := context.WithoutCancel(ctx)
	ref := atelier.ImageRef{Name: img.Name, Version: img.Version}
	logw := &imageLog{s: s, ctx: bg, img: img}
	res, err := s.runBuild(ctx, img, logw)
	logw.Flush()
	if ctx.Err() != nil {
		if rerr := s.store.RequeueImage(bg, img.Workspace, ref); rerr != nil {
			s.log.Error("requeueing an interrupted image build", "image", img.Location, "err", rerr)
		}
		s.log.Info("image build interrupted: queued again", "image", img.Location)
		return
	}
	msg := ""
	if err != nil {
		msg = atelier.ErrorMessage(err)
		if atelier.ErrorCode(err) == atelier.EINTERNAL {
			s.log.Error("image build failed", "image", img.Location, "err", err)
			msg = "the build failed: " + err.Error()
		}
		s.store.AppendImageLog(bg, img.Workspace, ref, "\nbuild failed: "+msg+"\n")
	}
	ended, eerr := s.store.EndImageBuild(bg, img.Workspace, ref, res, msg)
	if eerr != nil {
		s.log.Error("recording the end of an image build", "image", img.Location, "err", eerr)
		return
	}
	s.imageChanged(bg, ended)
	s.log.Info("image build ended", "workspace", img.Workspace, "image", img.Location, "status", ended.Status)
}

func (s *Images) runBuild(ctx context.Context, img *atelier.Image, log io.Writer) (*atelier.ImageBuildResult, error) {
	snap, err := s.store.FindSnapshot(ctx, img.Workspace, img.SnapshotID)
	if err != nil {
		return nil, atelier.Errorf(atelier.EINVALID, "the image's source directory (snapshot %s) is missing: %s", img.SnapshotID, atelier.ErrorMessage(err))
	}
	job := &atelier.ImageBuildJob{Image: img, Snapshot: snap, Open: s.objects.OpenObject}
	for _, m := range img.Models {
		v, err := s.store.FindModelVersion(ctx, img.Workspace, atelier.ModelRef{Name: m.Name, Version: m.Version})
		if err != nil {
			return nil, atelier.Errorf(atelier.EINVALID, "model %s: %s", m, atelier.ErrorMessage(err))
		}
		if v.IsReference() {
			return nil, v.NotStored()
		}
		job.Models = append(job.Models, v)
	}
	return s.Builder.Build(ctx, job, log)
}

// recoverBuilds puts back in the queue the builds of servers that died (and this one's own
// from before a restart): a build is made again from its inputs, its cached layers reused.
func (s *Images) recoverBuilds(ctx context.Context) {
	if s.Builder == nil {
		return
	}
	leases, err := s.store.ListLeases(ctx, atelier.LeaseKindBuild)
	if err != nil {
		return
	}
	now := s.now()
	for _, l := range leases {
		s.builds.mu.Lock()
		_, mine := s.builds.running[l.ID]
		s.builds.mu.Unlock()
		if mine {
			continue
		}
		if !s.takeable(l, now) {
			continue
		}
		if _, err := s.takeLease(ctx, l, now); err != nil {
			continue
		}
		ref, err := atelier.ParseImageRef(l.ID[len(l.Workspace)+1:])
		if err == nil {
			if err := s.store.RequeueImage(ctx, l.Workspace, ref); err == nil {
				s.log.Info("image build of a stopped server queued again", "workspace", l.Workspace, "image", ref.String())
			}
		}
		s.store.ReleaseLease(ctx, atelier.LeaseKindBuild, l.ID, s.owner())
	}
}

// stopBuilds interrupts the builds of this server (it stops): they go back to the queue.
func (s *Images) stopBuilds() {
	s.builds.mu.Lock()
	for _, cancel := range s.builds.running {
		cancel()
	}
	s.builds.mu.Unlock()
	s.builds.wg.Wait()
}

// imageLog writes a build's log to the store line by line (and at Flush), and publishes it.
type imageLog struct {
	s      *Images
	ctx    context.Context
	img    *atelier.Image
	mu     sync.Mutex
	buf    bytes.Buffer
	offset int64
	last   time.Time
}

func (l *imageLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if bytes.LastIndexByte(l.buf.Bytes(), '\n') >= 0 && time.Since(l.last) > 100*time.Millisecond || l.buf.Len() > 64<<10 {
		l.flush()
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (l *imageLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flush()
}

func (l *imageLog) flush() {
	if l.buf.Len() == 0 {
		return
	}
	text := l.buf.String()
	l.buf.Reset()
	l.last = time.Now()
	ref := atelier.ImageRef{Name: l.img.Name, Version: l.img.Version}
	if err := l.s.store.AppendImageLog(l.ctx, l.img.Workspace, ref, text); err != nil {
		l.s.log.Warn("appending to an image's build log", "image", l.img.Location, "err", err)
	}
	l.s.publish(l.img.Workspace, EventImageLog, "", ImageLogEvent{Image: ref.String(), Offset: l.offset, Text: text})
	l.offset += int64(len(text))
}

// ResolveWorkspaceImage tells whether a compute target's image names an image of the
// workspace (NAME:VERSION, no registry host or path: `atelier image`'s reference, which an
// image of that name and version exists for) and returns its reference in the workspace
// registry at the server's advertised address (HOST/WORKSPACE/NAME:VERSION). Anything else
// (python:3.11, a registry's reference) is not the workspace's: ok is false, used as is. A
// workspace image that did not build is an error saying so.
func (s *Images) ResolveWorkspaceImage(ctx context.Context, workspace, image string) (ref string, ok bool, err error) {
	if strings.Contains(image, "/") || !strings.Contains(image, ":") {
		return "", false, nil
	}
	r, err := atelier.ParseImageRef(image)
	if err != nil {
		return "", false, nil // not a workspace image's reference (a tag that is not a version)
	}
	img, err := s.store.FindImage(ctx, workspace, r)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	if img.Status != atelier.ImageSucceeded {
		return "", false, atelier.Errorf(atelier.EINVALID, "workspace image %s is %s: only a built image runs (see 'atelier image show %s')", r, img.Status, r)
	}
	u, err := url.Parse(s.ServerURL)
	if err != nil || u.Host == "" {
		return "", false, atelier.Errorf(atelier.EINVALID, "the server's advertised URL %q names no host for the image registry", s.ServerURL)
	}
	return u.Host + "/" + workspace + "/" + r.String(), true, nil
}

// AuthorizeRegistry decides whether the caller may use the workspace image registry: repo ""
// asks only whether it may use the registry at all (any authenticated caller), a repository
// <workspace>/... whether it may pull from it (any member of the workspace, a run of it) or,
// with write, push to or delete from it (Contributors and Owners).
func (s *Images) AuthorizeRegistry(ctx context.Context, repo string, write bool) error {
	if atelier.PrincipalFromContext(ctx) == nil {
		return atelier.Errorf(atelier.EUNAUTHORIZED, "authentication required")
	}
	if repo == "" {
		return nil
	}
	workspace, _, _ := strings.Cut(repo, "/")
	if write {
		return s.authorizeWrite(ctx, workspace, "")
	}
	return s.authorizeWorkspace(ctx, workspace)
}

// condaChecker is an ImageBuilder that checks a conda file against the base before a build is
// queued (images have no conda: only python, pip, setuptools and wheel as conda packages).
type condaChecker interface {
	CheckConda(ctx context.Context, workspace, base, name string, data []byte) error
}

// maxCondaFile bounds the conda file read at create.
const maxCondaFile = 1 << 20

// checkConda refuses, before anything is queued, a conda file the build would refuse.
func (s *Images) checkConda(ctx context.Context, workspace string, c atelier.ImageCreate, snap *atelier.Snapshot) error {
	checker, ok := s.Builder.(condaChecker)
	if !ok {
		return atelier.Errorf(atelier.EINVALID, "conda %s: this server's image builder takes no conda files: give a requirements.txt", c.Conda)
	}
	var digest string
	for _, e := range snap.Entries {
		if e.Path == c.Conda {
			digest = e.Digest
		}
	}
	if digest == "" {
		return atelier.Errorf(atelier.EINVALID, "conda file %s is not in the source directory", c.Conda)
	}
	rc, err := s.objects.OpenObject(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCondaFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxCondaFile {
		return atelier.Errorf(atelier.EINVALID, "conda file %s is larger than %d bytes", c.Conda, maxCondaFile)
	}
	return checker.CheckConda(ctx, workspace, c.Base, c.Conda, data)
}

// ImageRegistrySecret returns the value of the workspace's vault secret name, which holds the
// credentials of another registry an image's base is pulled from (USER:PASSWORD); ok is false
// when there is no such secret. No authorization: the image was created by a Contributor and
// its build reads the secret, which never leaves the server.
func (s *Images) ImageRegistrySecret(ctx context.Context, workspace, name string) (value string, ok bool, err error) {
	if _, err := s.store.SealedSecret(ctx, workspace, name); atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	values, err := s.data.openRunSecrets(ctx, workspace, []string{name})
	if err != nil {
		return "", false, err
	}
	return values[name], true, nil
}
