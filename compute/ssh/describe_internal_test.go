package ssh

import "testing"

func TestParseDescribe(t *testing.T) {
	out := "host gpu-box\ncpus 64\nMemTotal:       16314276 kB\nGPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)\nGPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-2)\n"
	n, err := parseDescribe([]byte(out))
	if err != nil || n.Name != "gpu-box" || n.CPUs != 64 || n.MemoryBytes != 16314276<<10 || n.GPUs != 2 || n.GPUType != "NVIDIA A100-SXM4-80GB" || n.State != "up" {
		t.Errorf("parseDescribe: %+v, %v", n, err)
	}
	if _, err := parseDescribe([]byte("host x\nMemTotal: 1 kB\n")); err == nil {
		t.Error("parseDescribe without a CPU count: no error")
	}
}
