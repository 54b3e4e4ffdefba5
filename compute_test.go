package atelier_test

import (
	"strings"
	"testing"

	"github.com/atelier-ml/atelier"
)

const testSSHKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

func TestComputeTargetSpecValidate(t *testing.T) {
	key := atelier.ComputeCredentials{SSHPrivateKey: testSSHKey}
	ssh := func(c atelier.SSHCompute) atelier.ComputeTargetSpec {
		return atelier.ComputeTargetSpec{Name: "gpu", Kind: "ssh", SSH: &c, Credentials: key}
	}
	for _, tc := range []struct {
		name string
		spec atelier.ComputeTargetSpec
		err  string // empty: valid
	}{
		{"local", atelier.ComputeTargetSpec{Name: "cpu4", Kind: "local", MaxConcurrentRuns: 4, Description: "four"}, ""},
		{"ssh", ssh(atelier.SSHCompute{Host: "10.0.0.7", User: "ml", HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0"}), ""},
		{"ssh ipv6", ssh(atelier.SSHCompute{Host: "[fe80::1]", Port: 2222, User: "ml"}), ""},
		{"slurm with a secret", atelier.ComputeTargetSpec{Name: "hpc", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "https://slurm:6820", Partition: "gpu", TokenSecret: "SLURM_JWT"}}, ""},
		{"slurm with a token", atelier.ComputeTargetSpec{Name: "hpc", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "http://slurm:6820"}, Credentials: atelier.ComputeCredentials{Token: "jwt"}}, ""},
		{"kubernetes in-cluster", atelier.ComputeTargetSpec{Name: "k8s", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Image: "ghcr.io/x/runner:1"}}, ""},
		{"podman default socket", atelier.ComputeTargetSpec{Name: "box", Kind: "podman", Podman: &atelier.PodmanCompute{}}, ""},
		{"podman ssh", atelier.ComputeTargetSpec{Name: "box", Kind: "podman", Podman: &atelier.PodmanCompute{URL: "ssh://core@host/run/podman/podman.sock"}}, ""},
		{"podman limits", atelier.ComputeTargetSpec{Name: "box", Kind: "podman", Podman: &atelier.PodmanCompute{CPUs: 0.5, MemoryGB: 2}}, ""},

		{"reserved", atelier.ComputeTargetSpec{Name: "local", Kind: "local"}, `"local" is reserved`},
		{"bad name", atelier.ComputeTargetSpec{Name: "-x", Kind: "local"}, "invalid compute target name"},
		{"unknown kind", atelier.ComputeTargetSpec{Name: "x", Kind: "aml"}, `unknown compute kind "aml": use local, ssh, slurm, kubernetes, podman`},
		{"long description", atelier.ComputeTargetSpec{Name: "x", Kind: "local", Description: strings.Repeat("d", 5000)}, "description"},
		{"local with podman", atelier.ComputeTargetSpec{Name: "x", Kind: "local", Podman: &atelier.PodmanCompute{}}, "podman does not apply to a local compute target"},
		{"ssh with slurm", atelier.ComputeTargetSpec{Name: "x", Kind: "ssh", SSH: &atelier.SSHCompute{Host: "h", User: "u"}, Slurm: &atelier.SlurmCompute{}, Credentials: key}, "slurm does not apply"},
		{"ssh no user", ssh(atelier.SSHCompute{Host: "h"}), "ssh.user is required"},
		{"ssh bad user", ssh(atelier.SSHCompute{Host: "h", User: "a;b"}), `invalid ssh.user "a;b"`},
		{"ssh negative port", ssh(atelier.SSHCompute{Host: "h", User: "u", Port: -1}), "ssh.port -1"},
		{"ssh host with a path", ssh(atelier.SSHCompute{Host: "h/x", User: "u"}), `invalid ssh.host "h/x"`},
		{"ssh with token", atelier.ComputeTargetSpec{Name: "x", Kind: "ssh", SSH: &atelier.SSHCompute{Host: "h", User: "u"}, Credentials: atelier.ComputeCredentials{SSHPrivateKey: testSSHKey, Token: "t"}}, "credentials.token does not apply to a ssh compute target"},
		{"secret too large", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml"}, Credentials: atelier.ComputeCredentials{Kubeconfig: "clusters:" + strings.Repeat("x", atelier.MaxComputeSecret)}}, "credentials.kubeconfig must be valid UTF-8 of at most"},
		{"slurm both tokens", atelier.ComputeTargetSpec{Name: "x", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "http://h", TokenSecret: "T"}, Credentials: atelier.ComputeCredentials{Token: "t"}}, "exactly one of slurm.token_secret"},
		{"slurm no url", atelier.ComputeTargetSpec{Name: "x", Kind: "slurm", Slurm: &atelier.SlurmCompute{TokenSecret: "T"}}, "slurm.url is required"},
		{"slurm url without host", atelier.ComputeTargetSpec{Name: "x", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "http:///x", TokenSecret: "T"}}, "has no host"},
		{"slurm ATELIER secret", atelier.ComputeTargetSpec{Name: "x", Kind: "slurm", Slurm: &atelier.SlurmCompute{URL: "http://h", TokenSecret: "ATELIER_TOKEN"}}, "slurm.token_secret: invalid secret name"},
		{"kubernetes context newline", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Context: "a\nb"}}, "invalid kubernetes.context"},
		{"kubernetes placement", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", CPU: "500m", Memory: "16Gi",
			NodeSelector: map[string]string{"cloud.google.com/gke-accelerator": "nvidia-l4"}, Tolerations: []atelier.KubernetesToleration{{Key: "nvidia.com/gpu", Operator: "Exists", Effect: "NoSchedule"}}}}, ""},
		{"kubernetes cpu", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", CPU: "four"}}, `invalid kubernetes.cpu "four"`},
		{"kubernetes memory", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Memory: "16GB"}}, `invalid kubernetes.memory "16GB"`},
		{"kubernetes node selector", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", NodeSelector: map[string]string{"pool": "a b"}}}, `invalid kubernetes.node_selector "pool"`},
		{"kubernetes toleration operator", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Tolerations: []atelier.KubernetesToleration{{Key: "gpu", Operator: "In"}}}}, `invalid kubernetes.tolerations[0].operator "In"`},
		{"kubernetes toleration effect", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Tolerations: []atelier.KubernetesToleration{{Key: "gpu", Effect: "Never"}}}}, `invalid kubernetes.tolerations[0].effect "Never"`},
		{"kubernetes toleration without key", atelier.ComputeTargetSpec{Name: "x", Kind: "kubernetes", Kubernetes: &atelier.KubernetesCompute{Namespace: "ml", Tolerations: []atelier.KubernetesToleration{{Value: "x"}}}}, "has no key"},
		{"podman query", atelier.ComputeTargetSpec{Name: "x", Kind: "podman", Podman: &atelier.PodmanCompute{URL: "tcp://h:1?x=1"}}, "no password, query or fragment"},
		{"podman image", atelier.ComputeTargetSpec{Name: "x", Kind: "podman", Podman: &atelier.PodmanCompute{Image: "-bad"}}, "invalid podman.image"},
		{"podman cpus", atelier.ComputeTargetSpec{Name: "x", Kind: "podman", Podman: &atelier.PodmanCompute{CPUs: -1}}, "podman.cpus -1 is out of range"},
		{"podman memory", atelier.ComputeTargetSpec{Name: "x", Kind: "podman", Podman: &atelier.PodmanCompute{MemoryGB: 20000}}, "podman.memory_gb 20000 is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Validate: %v, want valid", err)
			case tc.err != "" && (atelier.ErrorCode(err) != atelier.EINVALID || !strings.Contains(atelier.ErrorMessage(err), tc.err)):
				t.Errorf("Validate: %v, want EINVALID containing %q", err, tc.err)
			}
		})
	}
}

func TestComputeTargetSpecTarget(t *testing.T) {
	spec := atelier.ComputeTargetSpec{Name: "gpu", Kind: "ssh", SSH: &atelier.SSHCompute{Host: "h", User: "u"},
		Credentials: atelier.ComputeCredentials{SSHPrivateKey: testSSHKey, SSHPassphrase: "p"}}
	got := spec.Target()
	if got.MaxConcurrentRuns != 1 || got.SSH.Port != 22 || strings.Join(got.Credentials, ",") != "ssh_private_key,ssh_passphrase" || got.Sealed != nil {
		t.Errorf("Target() = %+v (ssh %+v)", got, got.SSH)
	}
	if spec.SSH.Port != 0 {
		t.Errorf("Target() changed the spec's ssh block")
	}
}
