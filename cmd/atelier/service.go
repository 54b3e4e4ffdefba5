package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/api"
	"github.com/spf13/cobra"
)

func newServiceCmd(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Deploy images as web services (HTTP scoring endpoints)",
		Long: `Web services: an image (models + score.py) served over HTTP at
  <server>/services/<workspace>/<name>/score
by replicas that run the image on a deployment target (local: processes on the server's
machine, each in the image's own filesystem). The gateway checks the service's keys (or a
workspace token, or nothing), balances requests over ready replicas, queues them while all are
busy (503 after max_request_wait_time) and scales the replicas with the load.`}
	cmd.AddCommand(serviceDeployCmd(cfg), serviceListCmd(cfg), serviceShowCmd(cfg), serviceUpdateCmd(cfg),
		serviceSplitCmd(cfg), serviceKeysCmd(cfg), serviceLogsCmd(cfg), serviceScoreCmd(cfg), serviceDeleteCmd(cfg))
	return cmd
}

// serviceFailedError makes the process exit with exitRunFailed: the awaited deployment failed.
type serviceFailedError struct{ svc *atelier.WebService }

func (e serviceFailedError) Error() string {
	return fmt.Sprintf("web service %s %s: %s", e.svc.Name, e.svc.State, e.svc.Error)
}

// serviceFlags are the deployment configuration's flags, shared by deploy and update.
type serviceFlags struct {
	replicas, maxConcurrent, maxWait, timeout, target, refresh, scaleDownDelay int
	autoscale, auth, replicaStart                                              string
	collect                                                                    bool
	cpu, memory                                                                float64
}

func (sf *serviceFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&sf.replicas, "replicas", 0, "a fixed number of replicas (default 1, without --autoscale)")
	f.StringVar(&sf.autoscale, "autoscale", "", "scale between MIN,MAX replicas with the load (MIN 0: scale to zero)")
	f.IntVar(&sf.target, "target-utilization", 0, "autoscale: keep busy replicas at this percentage of those ready (default 70)")
	f.IntVar(&sf.refresh, "autoscale-refresh", 0, "autoscale: seconds between decisions (default 1)")
	f.IntVar(&sf.scaleDownDelay, "scale-down-delay", 0, "autoscale: seconds of lower load before replicas are removed (default 60)")
	f.IntVar(&sf.maxConcurrent, "max-concurrent", 0, "requests a replica gets at once (replica_max_concurrent_requests, default 1)")
	f.IntVar(&sf.maxWait, "max-wait-ms", 0, "how long a request waits for a free replica before a 503 (default 500)")
	f.IntVar(&sf.timeout, "timeout-ms", 0, "how long run() may take before a 504 (scoring_timeout_ms, default 60000)")
	f.StringVar(&sf.auth, "auth", "", "how callers authenticate: key (the default), token (a workspace token) or none")
	f.BoolVar(&sf.collect, "collect-model-data", false, "let score.py's ModelDataCollector keep inputs and predictions")
	f.Float64Var(&sf.cpu, "cpu", 0, "CPU cores a replica asks for")
	f.Float64Var(&sf.memory, "memory-gb", 0, "memory a replica asks for, in GB")
	f.StringVar(&sf.replicaStart, "replica-start", "", "local target: fork replicas from a template that imported score.py once (fork, the default) or start a Python for each (process)")
}

// config builds a configuration from the flags over base (the service's, for update).
func (sf *serviceFlags) config(cmd *cobra.Command, base atelier.WebServiceConfig) (*atelier.WebServiceConfig, error) {
	c := base
	f := cmd.Flags()
	changed := false
	set := func(name string, apply func()) {
		if f.Changed(name) {
			apply()
			changed = true
		}
	}
	set("replicas", func() { c.Replicas, c.AutoscaleEnabled = sf.replicas, false })
	var err error
	set("autoscale", func() {
		lo, hi, ok := strings.Cut(sf.autoscale, ",")
		mn, err1 := strconv.Atoi(strings.TrimSpace(lo))
		mx, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if !ok || err1 != nil || err2 != nil {
			err = usagef("--autoscale %q: give MIN,MAX replicas, e.g. 1,8", sf.autoscale)
		}
		c.AutoscaleEnabled, c.MinReplicas, c.MaxReplicas, c.Replicas = true, mn, mx, 0
	})
	if err != nil {
		return nil, err
	}
	if f.Changed("replicas") && f.Changed("autoscale") {
		return nil, usagef("give --replicas or --autoscale, not both")
	}
	set("target-utilization", func() { c.TargetUtilization = sf.target })
	set("autoscale-refresh", func() { c.RefreshSeconds = sf.refresh })
	set("scale-down-delay", func() { c.ScaleDownDelaySeconds = sf.scaleDownDelay })
	set("max-concurrent", func() { c.MaxConcurrentRequestsPerReplica = sf.maxConcurrent })
	set("max-wait-ms", func() { c.MaxRequestWaitMs = sf.maxWait })
	set("timeout-ms", func() { c.ScoringTimeoutMs = sf.timeout })
	set("collect-model-data", func() { c.CollectModelData = sf.collect })
	set("cpu", func() { c.CPUCores = sf.cpu })
	set("memory-gb", func() { c.MemoryGB = sf.memory })
	set("replica-start", func() { c.ReplicaStart = sf.replicaStart })
	set("auth", func() {
		switch sf.auth {
		case "key":
			c.AuthEnabled, c.TokenAuthEnabled = true, false
		case "token":
			c.AuthEnabled, c.TokenAuthEnabled = false, true
		case "none":
			c.AuthEnabled, c.TokenAuthEnabled = false, false
		default:
			err = usagef("--auth %q: key, token or none", sf.auth)
		}
	})
	if err != nil {
		return nil, err
	}
	if !changed {
		return nil, nil
	}
	return &c, nil
}

func serviceDeployCmd(cfg *clientConfig) *cobra.Command {
	var d atelier.WebServiceDeploy
	var sf serviceFlags
	var tags []string
	var wait bool
	cmd := &cobra.Command{
		Use:   "deploy NAME --image REF [--target local] [--replicas N | --autoscale MIN,MAX] [--wait]",
		Short: "Deploy an image as a web service",
		Long: `Deploy image REF (NAME:VERSION, or NAME for its latest version) as web service NAME.
The replicas start on the deployment target; the service is Healthy once they are ready
(score.py's init() ran). Callers send 'Authorization: Bearer KEY' with one of the service's
keys ('atelier service keys NAME'), unless --auth says otherwise.

The target is local (replica processes on the server's machine), podman (containers), or the
name of a kubernetes compute target of the workspace ('atelier compute attach NAME --kind
kubernetes'): a Deployment per image and a Service in its namespace, the gateway reaching the
pods' IPs (the server runs in the cluster or routes to its pod network).

Without --wait, print the service and return while it deploys; with --wait, return once it is
Healthy (exit 0) or Failed (exit 7, with why).`,
		Example: `  atelier service deploy diabetes --image diabetes-svc:1 --autoscale 1,8 --target-utilization 70 --wait
  atelier service deploy diabetes --image diabetes-svc:1 --target k8s-prod --autoscale 2,8 --cpu 1 --memory-gb 2 --wait
  curl -H "Authorization: Bearer $KEY" -d '{"data": [[0.03, 0.05]]}' http://127.0.0.1:8600/services/default/diabetes/score`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.Name = args[0]
			if err := atelier.ValidateServiceName(d.Name); err != nil {
				return usagef("%s", atelier.ErrorMessage(err))
			}
			if d.Image == "" {
				return usagef("--image is required: the image to serve (NAME:VERSION or NAME)")
			}
			if _, err := parseImageRef(d.Image); err != nil {
				return err
			}
			var err error
			if d.Tags, err = parseKeyValues("tag", tags); err != nil {
				return err
			}
			base := atelier.WebServiceConfig{AuthEnabled: true}
			if d.Config, err = sf.config(cmd, base); err != nil {
				return err
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			svc, err := c.DeployWebService(cmd.Context(), cfg.workspace, d)
			if err != nil {
				return err
			}
			return finishService(cmd, cfg, c, svc, wait, "deploying")
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.Image, "image", "", "the image to serve: NAME:VERSION or NAME (its latest version)")
	f.StringVar(&d.Target, "target", "", "the deployment target: local (the default), podman, or a kubernetes compute target's name")
	f.StringVar(&d.Description, "description", "", "description")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.BoolVar(&wait, "wait", false, "wait until the service is Healthy (exit 0) or Failed (exit 7)")
	sf.add(cmd)
	return cmd
}

// finishService prints a deployed or updated service, after waiting for it with wait.
func finishService(cmd *cobra.Command, cfg *clientConfig, c *api.Client, svc *atelier.WebService, wait bool, doing string) error {
	if wait {
		var err error
		if svc, err = waitService(cmd.Context(), c, cfg.workspace, svc.Name, svc.UpdatedAt); err != nil {
			if cmd.Context().Err() != nil {
				return interruptedError{fmt.Sprintf("stopped waiting; service %s keeps %s (see: atelier service show %s)", svc.Name, doing, svc.Name)}
			}
			return err
		}
	}
	if cfg.output == "json" {
		if err := printJSON(cmd.OutOrStdout(), svc); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", svc.Name, svc.State, svc.ScoringURI)
	}
	if svc.State == atelier.ServiceFailed {
		return serviceFailedError{svc}
	}
	if !wait {
		cfg.done("%s %s; follow it with: atelier service logs %s --follow", doing, svc.Name, svc.Name)
	} else if svc.Config.AuthEnabled {
		cfg.done("its keys: atelier service keys %s", svc.Name)
	}
	return nil
}

// waitService polls a service until the change made at (or after) since is applied: it is
// Healthy, Unhealthy or Failed.
func waitService(ctx context.Context, c *api.Client, workspace, name string, since time.Time) (*atelier.WebService, error) {
	delay := 50 * time.Millisecond
	for {
		svc, err := c.FindWebService(ctx, workspace, name)
		if err != nil {
			return nil, err
		}
		if svc.State != atelier.ServiceTransitioning && !svc.UpdatedAt.Before(since) {
			return svc, nil
		}
		select {
		case <-ctx.Done():
			return svc, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

func serviceListCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List web services", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			list, err := c.ListWebServices(cmd.Context(), cfg.workspace)
			if err != nil {
				return err
			}
			if list == nil {
				list = []*atelier.WebService{}
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "IMAGES", "TARGET", "REPLICAS", "SCORING URI")
			for _, svc := range list {
				t.row(svc.Name, svc.State, serviceImages(svc), svc.Target, replicaText(svc), svc.ScoringURI)
			}
			return t.flush()
		},
	}
}

func serviceImages(svc *atelier.WebService) string {
	if len(svc.Images) == 1 {
		return svc.Images[0].Image
	}
	var parts []string
	for _, im := range svc.Images {
		parts = append(parts, im.String())
	}
	return strings.Join(parts, ",")
}

// replicaText says how many replicas are busy, ready and wanted: "1 busy / 2 ready / 2".
func replicaText(svc *atelier.WebService) string {
	r := svc.Replicas
	return fmt.Sprintf("%d busy / %d ready / %d", r.Busy, r.Ready, r.Desired)
}

func serviceShowCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a web service: its state, scoring URI, replicas and configuration", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			svc, err := c.FindWebService(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), svc)
			}
			t := newTable(cmd.OutOrStdout(), "FIELD", "VALUE")
			t.row("name", svc.Name)
			t.row("state", svc.State)
			if svc.Error != "" {
				t.row("error", svc.Error)
			}
			t.row("images", serviceImages(svc))
			t.row("target", svc.Target)
			t.row("scoring uri", svc.ScoringURI)
			t.row("swagger uri", svc.SwaggerURI)
			t.row("replicas", replicaText(svc))
			if svc.Replicas.Queued > 0 {
				t.row("queued", svc.Replicas.Queued)
			}
			k := svc.Config
			if k.AutoscaleEnabled {
				t.row("autoscale", fmt.Sprintf("%d-%d replicas at %d%% utilization, every %ds, down after %ds", k.MinReplicas, k.MaxReplicas, k.TargetUtilization, k.RefreshSeconds, k.ScaleDownDelaySeconds))
			} else {
				t.row("autoscale", fmt.Sprintf("off (%d %s)", k.Replicas, plural(int(k.Replicas), "replica", "replicas")))
			}
			t.row("auth", authText(k))
			t.row("limits", fmt.Sprintf("%d concurrent requests a replica, wait %d ms, timeout %d ms", k.MaxConcurrentRequestsPerReplica, k.MaxRequestWaitMs, k.ScoringTimeoutMs))
			t.row("model data", k.CollectModelData)
			t.row("description", svc.Description)
			t.row("tags", kvString(svc.Tags))
			t.row("created", svc.CreatedAt)
			t.row("created by", svc.CreatedBy)
			t.row("updated", svc.UpdatedAt)
			for _, e := range svc.Events {
				t.row("event", e.Time.Format("15:04:05")+" "+e.Message)
			}
			return t.flush()
		},
	}
}

func authText(c atelier.WebServiceConfig) string {
	switch {
	case c.AuthEnabled:
		return "key"
	case c.TokenAuthEnabled:
		return "token"
	}
	return "none (anyone may score)"
}

func serviceUpdateCmd(cfg *clientConfig) *cobra.Command {
	var d atelier.WebServiceDeploy
	var sf serviceFlags
	var tags []string
	var wait bool
	cmd := &cobra.Command{
		Use:   "update NAME [--image REF] [flags]",
		Short: "Change a web service: a new image (a rolling update) or its configuration",
		Long: `Change web service NAME. A new --image is a rolling update: its replicas start and
become ready before traffic moves to them, then the old replicas finish their requests and
stop, so no request fails. Flags not given keep their values.`,
		Example: `  atelier service update diabetes --image diabetes-svc:2 --wait`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.Name = args[0]
			var err error
			if cmd.Flags().Changed("tag") {
				if d.Tags, err = parseKeyValues("tag", tags); err != nil {
					return err
				}
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			cur, err := c.FindWebService(cmd.Context(), cfg.workspace, d.Name)
			if err != nil {
				return err
			}
			if d.Config, err = sf.config(cmd, cur.Config); err != nil {
				return err
			}
			svc, err := c.UpdateWebService(cmd.Context(), cfg.workspace, d)
			if err != nil {
				return err
			}
			return finishService(cmd, cfg, c, svc, wait, "updating")
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.Image, "image", "", "serve this image instead (NAME:VERSION or NAME)")
	f.StringVar(&d.Description, "description", "", "description")
	f.StringArrayVar(&tags, "tag", nil, "replace the tags with these KEY=VALUE (repeatable)")
	f.BoolVar(&wait, "wait", false, "wait until the change is applied (exit 7 if it failed)")
	sf.add(cmd)
	return cmd
}

func serviceSplitCmd(cfg *clientConfig) *cobra.Command {
	var to string
	var wait bool
	cmd := &cobra.Command{
		Use:   "split NAME --to IMAGE:VERSION=PERCENT",
		Short: "Send a share of a service's traffic to another image version",
		Long: `Send PERCENT % of web service NAME's requests to IMAGE:VERSION and the rest to the image it
serves now. --to IMAGE:VERSION=100 moves all traffic there (and stops the other image);
--to OLD:VERSION=100 rolls back.`,
		Example: `  atelier service split diabetes --to diabetes-svc:2=10`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			si, err := atelier.ParseTrafficSplit(to)
			if err != nil {
				return usagef("--to: %s", atelier.ErrorMessage(err))
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			cur, err := c.FindWebService(cmd.Context(), cfg.workspace, args[0])
			if err != nil {
				return err
			}
			images := []atelier.ServiceImage{si}
			if si.Percent < 100 {
				var other *atelier.ServiceImage
				for i := range cur.Images {
					if cur.Images[i].Image != si.Image {
						other = &cur.Images[i]
					}
				}
				if other == nil {
					return usagef("web service %s serves only %s: give another image version to split with", cur.Name, si.Image)
				}
				images = append(images, atelier.ServiceImage{Image: other.Image, Percent: 100 - si.Percent})
				if si.Percent == 0 {
					images = images[1:]
					images[0].Percent = 100
				}
			}
			svc, err := c.UpdateWebService(cmd.Context(), cfg.workspace, atelier.WebServiceDeploy{Name: cur.Name, Images: images})
			if err != nil {
				return err
			}
			return finishService(cmd, cfg, c, svc, wait, "splitting")
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "IMAGE:VERSION=PERCENT")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the split is applied")
	return cmd
}

func serviceKeysCmd(cfg *clientConfig) *cobra.Command {
	var regenerate string
	cmd := &cobra.Command{
		Use: "keys NAME [--regenerate primary|secondary]", Short: "Print a web service's keys (or replace one)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if regenerate != "" && regenerate != "primary" && regenerate != "secondary" {
				return usagef("--regenerate %q: primary or secondary", regenerate)
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			k, err := c.WebServiceKeys(cmd.Context(), cfg.workspace, args[0], regenerate)
			if err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), k)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "primary   %s\nsecondary %s\n", k.Primary, k.Secondary)
			return nil
		},
	}
	cmd.Flags().StringVar(&regenerate, "regenerate", "", "replace this key first: primary or secondary")
	return cmd
}

func serviceLogsCmd(cfg *clientConfig) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "logs NAME [--follow]", Short: "Print a web service's log: its replicas' output, scale decisions and requests", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			var offset int64
			for {
				if offset, err = c.WebServiceLog(ctx, cfg.workspace, args[0], offset, out); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if !follow {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(300 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}

func serviceScoreCmd(cfg *clientConfig) *cobra.Command {
	var data, path string
	cmd := &cobra.Command{
		Use:   "score NAME --data JSON|@FILE",
		Short: "Send a scoring request to a web service and print the answer",
		Long: `Send DATA (a JSON text, or @FILE for a file's content, or @- for stdin) to web service
NAME's /score (or --path) with its primary key, and print the answer. Exits 1 when the service
answers with an error status.`,
		Example: `  atelier service score diabetes --data '{"data": [[0.03, 0.05]]}'`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := []byte(data)
			if name, ok := strings.CutPrefix(data, "@"); ok {
				var err error
				if name == "-" {
					body, err = io.ReadAll(os.Stdin)
				} else {
					body, err = os.ReadFile(name)
				}
				if err != nil {
					return usagef("--data %s: %v", data, err)
				}
			}
			c, err := cfg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			svc, err := c.FindWebService(ctx, cfg.workspace, args[0])
			if err != nil {
				return err
			}
			auth := ""
			if svc.Config.AuthEnabled {
				k, err := c.WebServiceKeys(ctx, cfg.workspace, svc.Name, "")
				if err != nil {
					return err
				}
				auth = "Bearer " + k.Primary
			} else if svc.Config.TokenAuthEnabled {
				auth = "Bearer " + c.Token
			}
			resp, err := c.Score(ctx, cfg.workspace, svc.Name, path, auth, bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			cmd.OutOrStdout().Write(out)
			if len(out) > 0 && out[len(out)-1] != '\n' {
				fmt.Fprintln(cmd.OutOrStdout())
			}
			if resp.StatusCode >= 300 {
				return fmt.Errorf("the service answered %s", resp.Status)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the request body: JSON, @FILE or @- (stdin)")
	cmd.Flags().StringVar(&path, "path", "/score", "the service's path: /score, /v2/models/NAME/infer, /invocations")
	return cmd
}

func serviceDeleteCmd(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Stop a web service's replicas and delete it", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client()
			if err != nil {
				return err
			}
			if err := c.DeleteWebService(cmd.Context(), cfg.workspace, args[0]); err != nil {
				return err
			}
			if cfg.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"deleted": args[0]})
			}
			cfg.done("deleted web service %s", args[0])
			return nil
		},
	}
}
