package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeTargetService = (*Service)(nil)

// computeCheckTimeout bounds a driver's check of a target being created or attached: it runs
// inside the request.
const computeCheckTimeout = 60 * time.Second

// Activity kinds of compute targets.
const (
	ActivityComputeCreate = "compute.create" // a local target
	ActivityComputeAttach = "compute.attach" // a remote one
)

// computeAAD binds sealed compute credentials to their target.
func computeAAD(workspace, name string) []byte {
	return []byte("atelier compute\x00" + workspace + "\x00" + name)
}

// computeKinds names the kinds this server has a driver for, sorted.
func (s *Compute) computeKinds() []string {
	return slices.Sorted(maps.Keys(s.Drivers))
}

// checkComputeKind refuses a kind this server has no driver for.
func (s *Compute) checkComputeKind(kind string) (atelier.ComputeDriver, error) {
	if d, ok := s.Drivers[kind]; ok && d != nil {
		return d, nil
	}
	has := strings.Join(s.computeKinds(), ", ")
	if has == "" {
		has = "none"
	}
	return nil, atelier.Errorf(atelier.EINVALID, "compute kind %q is not available on this server yet (this server has: %s)", kind, has)
}

func (s *Compute) sealComputeCredentials(workspace, name string, creds atelier.ComputeCredentials) ([]byte, error) {
	if len(creds.Names()) == 0 {
		return nil, nil
	}
	if s.Secrets == nil {
		return nil, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot store credentials")
	}
	plain, err := json.Marshal(creds)
	if err != nil {
		return nil, err
	}
	return s.Secrets.Seal(plain, computeAAD(workspace, name))
}

// ComputeTargetCredentials decrypts a stored target's credentials (t as ComputeTargetFor
// returns it), with a slurm target's token read from the workspace secret it names. It does
// no authorization: it is for the scheduler and the drivers. Errors never hold a value.
func (s *Compute) ComputeTargetCredentials(ctx context.Context, t *atelier.ComputeTarget) (atelier.ComputeCredentials, error) {
	var creds atelier.ComputeCredentials
	if len(t.Sealed) > 0 {
		if s.Secrets == nil {
			return creds, atelier.Errorf(atelier.EUNAVAILABLE, "the server has no master key, so it cannot use the credentials of compute target %q", t.Name)
		}
		plain, err := s.Secrets.Open(t.Sealed, computeAAD(t.Workspace, t.Name))
		if err != nil {
			s.log.Error("opening compute target credentials", "workspace", t.Workspace, "compute", t.Name, "err", err)
			return creds, atelier.Errorf(atelier.EUNAVAILABLE, "the credentials of compute target %q cannot be decrypted (was the server's master key changed?): detach it and attach it again", t.Name)
		}
		if err := json.Unmarshal(plain, &creds); err != nil {
			return creds, err
		}
	}
	if t.Slurm != nil && t.Slurm.TokenSecret != "" {
		values, err := s.data.openRunSecrets(ctx, t.Workspace, []string{t.Slurm.TokenSecret})
		if err != nil {
			return creds, atelier.Errorf(atelier.ErrorCode(err), "compute target %q: slurm.token_secret: %s", t.Name, atelier.ErrorMessage(err))
		}
		creds.Token = values[t.Slurm.TokenSecret]
	}
	return creds, nil
}

// builtInComputeTarget returns the built-in target named name, or nil.
func (s *Compute) builtInComputeTarget(name string) *atelier.ComputeTarget {
	for _, t := range s.builtInComputeTargets() {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// ComputeTargetFor returns the compute target a run of the workspace names: the built-in
// one (local) or one of the workspace's stored targets, with its sealed credentials (open them
// with ComputeTargetCredentials); ENOTFOUND for an unknown name. It does no authorization: it
// is for the scheduler. A stored target's runs are the runs of its workspace whose compute is
// its name.
func (s *Compute) ComputeTargetFor(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, error) {
	if t := s.builtInComputeTarget(name); t != nil {
		return t, nil
	}
	if err := atelier.ValidateName("compute target", name); err != nil {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "compute target %q not found", name)
	}
	return s.store.FindComputeTarget(ctx, workspace, name)
}

// withRuns fills a target's queue from the store: the built-in targets' across workspaces
// (they share the server's machine), a stored target's in its workspace.
func (s *Compute) withRuns(ctx context.Context, t *atelier.ComputeTarget) (*atelier.ComputeTarget, error) {
	ws := t.Workspace
	if t.BuiltIn {
		ws = ""
	}
	queued, active, err := s.store.ComputeTargetRuns(ctx, ws, t.Name)
	if err != nil {
		return nil, err
	}
	t.Queued, t.Running = queued, active
	return t, nil
}

// publicCompute is a target as users see it: without its sealed credentials.
func publicCompute(t *atelier.ComputeTarget) *atelier.ComputeTarget {
	t.Sealed = nil
	return t
}

// CreateComputeTarget creates a local target or attaches a remote one: the spec is checked,
// the kind must have a driver on this server, the driver checks the target (when it can) and
// the target is stored with its credentials sealed. The check is an activity (kind
// compute.create or compute.attach), recorded whatever its outcome and named in the target.
func (s *Compute) CreateComputeTarget(ctx context.Context, workspace string, spec atelier.ComputeTargetSpec) (*atelier.ComputeTarget, error) {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	driver, err := s.checkComputeKind(spec.Kind)
	if err != nil {
		return nil, err
	}
	if s.builtInComputeTarget(spec.Name) != nil {
		return nil, atelier.Errorf(atelier.ECONFLICT, "compute target %q is built in: choose another name", spec.Name)
	}
	if _, err := s.store.FindComputeTarget(ctx, workspace, spec.Name); err == nil {
		return nil, atelier.Errorf(atelier.ECONFLICT, "compute target %q already exists in workspace %q (detach it first to replace it)", spec.Name, workspace)
	} else if atelier.ErrorCode(err) != atelier.ENOTFOUND {
		return nil, err
	}
	if spec.Slurm != nil && spec.Slurm.TokenSecret != "" {
		if _, err := s.store.SealedSecret(ctx, workspace, spec.Slurm.TokenSecret); atelier.ErrorCode(err) == atelier.ENOTFOUND {
			return nil, atelier.Errorf(atelier.EINVALID, "slurm.token_secret: secret %q does not exist in workspace %q (set it with 'atelier secret set %s')",
				spec.Slurm.TokenSecret, workspace, spec.Slurm.TokenSecret)
		} else if err != nil {
			return nil, err
		}
	}
	t := spec.Target()
	t.Workspace = workspace
	if t.Sealed, err = s.sealComputeCredentials(workspace, spec.Name, spec.Credentials); err != nil {
		return nil, err
	}

	kind, done := ActivityComputeAttach, "attached"
	if spec.Kind == atelier.ComputeLocal {
		kind, done = ActivityComputeCreate, "created"
	}
	now := s.now().UTC()
	act := &atelier.Activity{ID: newActivityID(), Workspace: workspace, Kind: kind, Target: spec.Name, Status: atelier.ActivityRunning,
		Message: "checking the " + spec.Kind + " target", StartedAt: now, UpdatedAt: now}
	if err := s.store.PutActivity(ctx, act); err != nil {
		return nil, err
	}
	s.publish(workspace, atelier.EventActivity, "", act)
	t.Activity = act.ID

	err = s.checkComputeTarget(ctx, driver, t, spec.Credentials)
	if err == nil {
		err = s.store.CreateComputeTarget(ctx, workspace, t)
	}
	end := s.now().UTC()
	act.UpdatedAt, act.EndedAt, act.Percent = end, &end, 100
	if err != nil {
		act.Status, act.Message, act.Error = atelier.ActivityFailed, "not "+done, atelier.ErrorMessage(err)
	} else {
		act.Status, act.Message = atelier.ActivitySucceeded, done
	}
	if perr := s.store.PutActivity(context.WithoutCancel(ctx), act); perr != nil {
		s.log.Error("recording the end of an activity", "activity", act.ID, "err", perr)
	}
	s.publish(workspace, atelier.EventActivity, "", act)
	if err != nil {
		return nil, err
	}
	return s.withRuns(ctx, publicCompute(t))
}

// checkComputeTarget asks the target's driver to check it, when the driver can. A failure is
// the user's to fix (an unreachable host, a refused key), never a server error.
func (s *Compute) checkComputeTarget(ctx context.Context, driver atelier.ComputeDriver, t *atelier.ComputeTarget, creds atelier.ComputeCredentials) error {
	checker, ok := driver.(atelier.ComputeChecker)
	if !ok {
		return nil
	}
	if t.Slurm != nil && t.Slurm.TokenSecret != "" {
		values, err := s.data.openRunSecrets(ctx, t.Workspace, []string{t.Slurm.TokenSecret})
		if err != nil {
			return err
		}
		creds.Token = values[t.Slurm.TokenSecret]
	}
	ctx, cancel := context.WithTimeout(ctx, computeCheckTimeout)
	defer cancel()
	view := *t
	view.Sealed = nil
	err := checker.Check(ctx, &view, creds)
	if err == nil {
		return nil
	}
	code, msg := atelier.ErrorCode(err), atelier.ErrorMessage(err)
	if code == atelier.EINTERNAL {
		// A driver's plain error says what it met on the user's target (a refused connection,
		// an unknown host key): the user's to read and to fix.
		s.log.Warn("a compute target failed its check", "workspace", t.Workspace, "compute", t.Name, "kind", t.Kind, "err", err)
		code, msg = atelier.EINVALID, err.Error()
	}
	return atelier.Errorf(code, "compute target %q failed its check: %s", t.Name, msg)
}

// FindComputeTarget returns a compute target with its queue, never its credentials.
func (s *Compute) FindComputeTarget(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, error) {
	if err := s.authorize(ctx, workspace); err != nil {
		return nil, err
	}
	if err := atelier.ValidateName("compute target", name); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, workspace); err != nil {
		return nil, err
	}
	t, err := s.ComputeTargetFor(ctx, workspace, name)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "no compute target %q in workspace %q (see 'atelier compute list')", name, workspace)
	} else if err != nil {
		return nil, err
	}
	if _, err := s.withRuns(ctx, t); err != nil {
		return nil, err
	}
	s.describeComputeTarget(ctx, t)
	return publicCompute(t), nil
}

// ComputeDescribeTimeout bounds the question a target's show asks its driver (what the target
// has): the target may not answer, and the show answers with the stored facts anyway.
const ComputeDescribeTimeout = 5 * time.Second

// describeComputeTarget asks a target's driver what the target has, when the driver can tell
// (see atelier.ComputeDescriber), and puts the answer in t.Capacity, or in t.CapacityError the
// reason in one line, without any credential's value.
func (s *Compute) describeComputeTarget(ctx context.Context, t *atelier.ComputeTarget) {
	var driver atelier.ComputeDriver
	if t.BuiltIn {
		s.sched.mu.Lock()
		if bt := s.sched.targets[t.Name]; bt != nil {
			driver = bt.Driver
		}
		s.sched.mu.Unlock()
	} else {
		driver = s.Drivers[t.Kind]
		if driver == nil {
			t.CapacityError = fmt.Sprintf("this server has no driver for %s compute targets", t.Kind)
			return
		}
	}
	describer, ok := driver.(atelier.ComputeDescriber)
	if !ok {
		return
	}
	var creds atelier.ComputeCredentials
	if !t.BuiltIn {
		var err error
		if creds, err = s.ComputeTargetCredentials(ctx, t); err != nil {
			t.CapacityError = oneLine(atelier.ErrorMessage(err), creds)
			return
		}
	}
	dctx, cancel := context.WithTimeout(ctx, ComputeDescribeTimeout)
	defer cancel()
	view := *t
	view.Sealed = nil
	c, err := describer.Describe(dctx, &view, creds)
	switch {
	// A driver that noticed the deadline says so itself (EUNAVAILABLE, "did not answer in
	// time"); any other error the deadline cut short is told as the target's silence.
	case err != nil && dctx.Err() != nil && ctx.Err() == nil && atelier.ErrorCode(err) != atelier.EUNAVAILABLE:
		t.CapacityError = oneLine(fmt.Sprintf("compute target %s did not answer within %s (%s)", t.Name, ComputeDescribeTimeout, atelier.ErrorMessage(err)), creds)
	case err != nil:
		if atelier.ErrorCode(err) == atelier.EINTERNAL {
			s.log.Warn("a compute target did not say what it has", "workspace", t.Workspace, "compute", t.Name, "kind", t.Kind, "err", err)
		}
		t.CapacityError = oneLine(atelier.ErrorMessage(err), creds)
	case c == nil:
		t.CapacityError = fmt.Sprintf("compute target %s told nothing of itself", t.Name)
	default:
		t.Capacity = c
	}
}

// oneLine makes an error message one line of at most 500 bytes, with every credential's value
// (and a kubeconfig's tokens, passwords and keys) replaced by "[redacted]".
func oneLine(msg string, creds atelier.ComputeCredentials) string {
	secrets := []string{creds.Token, creds.SSHPrivateKey, creds.SSHPassphrase, creds.Kubeconfig}
	for _, line := range strings.Split(creds.Kubeconfig, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch strings.TrimSpace(k) {
		case "token", "password", "client-key-data", "client-certificate-data":
			if v = strings.Trim(strings.TrimSpace(v), `"'`); ok && len(v) >= 4 {
				secrets = append(secrets, v)
			}
		}
	}
	for _, v := range secrets {
		if v = strings.TrimSpace(v); len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:497], "") + "..."
	}
	return msg
}

// storedComputeTargets lists a workspace's stored targets with their queues, as users see them.
func (s *Compute) storedComputeTargets(ctx context.Context, workspace string) ([]*atelier.ComputeTarget, error) {
	list, err := s.store.ListComputeTargets(ctx, workspace)
	if err != nil {
		return nil, err
	}
	for _, t := range list {
		if _, err := s.withRuns(ctx, publicCompute(t)); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// DetachComputeTarget forgets a stored target: its configuration and credentials (nothing is
// done on the target's machine). It is refused while runs are queued or active on it, and for
// the built-in targets.
func (s *Compute) DetachComputeTarget(ctx context.Context, workspace, name string) error {
	if err := s.authorizeWrite(ctx, workspace, ""); err != nil {
		return err
	}
	if err := atelier.ValidateName("compute target", name); err != nil {
		return err
	}
	if s.builtInComputeTarget(name) != nil || name == atelier.DefaultCompute {
		return atelier.Errorf(atelier.ECONFLICT, "compute target %q is built in: it cannot be detached", name)
	}
	if _, err := s.store.FindComputeTarget(ctx, workspace, name); err != nil {
		return err
	}
	queued, active, err := s.store.ComputeTargetRuns(ctx, workspace, name)
	if err != nil {
		return err
	}
	if queued+active == 0 {
		err = s.store.DeleteComputeTarget(ctx, workspace, name)
		if atelier.ErrorCode(err) != atelier.ECONFLICT {
			return err
		}
		// A run arrived meanwhile: count again for the message.
		if queued, active, err = s.store.ComputeTargetRuns(ctx, workspace, name); err != nil {
			return err
		}
	}
	return atelier.Errorf(atelier.ECONFLICT, "compute target %q has %s: cancel them first ('atelier run cancel RUN_ID') or wait for them to end, then detach it",
		name, runCounts(queued, active))
}

// runCounts says "2 queued runs and 1 active run".
func runCounts(queued, active int) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{queued, "queued"}, {active, "active"}} {
		if c.n == 1 {
			parts = append(parts, "1 "+c.what+" run")
		} else if c.n > 1 {
			parts = append(parts, fmt.Sprintf("%d %s runs", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "runs"
	}
	return strings.Join(parts, " and ")
}

// newActivityID returns an activity id of the shape of run ids (32 hex characters).
func newActivityID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkRunCompute checks the compute target a submitted run names: a built-in one, or a
// stored target of the workspace whose kind this server has a driver for.
func (s *Compute) checkRunCompute(ctx context.Context, workspace, name string) error {
	t, err := s.ComputeTargetFor(ctx, workspace, name)
	if atelier.ErrorCode(err) == atelier.ENOTFOUND {
		return atelier.Errorf(atelier.EINVALID, "unknown compute target %q (see 'atelier compute list')", name)
	} else if err != nil {
		return err
	}
	if !t.BuiltIn {
		if _, err := s.checkComputeKind(t.Kind); err != nil {
			return atelier.Errorf(atelier.EINVALID, "compute target %q: %s", name, atelier.ErrorMessage(err))
		}
	}
	return nil
}

// endInterruptedComputeChecks ends the create and attach activities a server left Running when
// it stopped (a check runs within its request): Succeeded if the target was stored by it, else
// Failed. Another replica's check still under way may be marked so meanwhile; its own end
// writes the truth over it.
func (s *Compute) endInterruptedComputeChecks(ctx context.Context) error {
	workspaces, err := s.store.ListWorkspaces(ctx)
	if err != nil {
		return err
	}
	for _, ws := range workspaces {
		for _, kind := range []string{ActivityComputeCreate, ActivityComputeAttach} {
			acts, err := s.store.ListActivities(ctx, ws.Name, atelier.ActivityFilter{Kind: kind, Active: true, Limit: atelier.MaxPageSize})
			if err != nil {
				return err
			}
			for _, a := range acts {
				now := s.now().UTC()
				a.UpdatedAt, a.EndedAt, a.Percent = now, &now, 100
				if t, err := s.store.FindComputeTarget(ctx, ws.Name, a.Target); err == nil && t.Activity == a.ID {
					a.Status, a.Message = atelier.ActivitySucceeded, "stored"
				} else {
					a.Status, a.Message = atelier.ActivityFailed, "interrupted"
					a.Error = "the server stopped during the check; the target was not stored: create or attach it again"
				}
				if err := s.store.PutActivity(ctx, a); err != nil {
					return err
				}
				s.log.Warn("a compute target's check was cut short by a stop", "workspace", ws.Name, "compute", a.Target, "activity", a.ID, "status", a.Status)
			}
		}
	}
	return nil
}
