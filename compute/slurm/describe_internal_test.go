package slurm

import (
	"encoding/json"
	"testing"
)

func TestGPUs(t *testing.T) {
	for _, tc := range []struct {
		gres string
		n    int
		kind string
	}{
		{"", 0, ""}, {"(null)", 0, ""}, {"gpu:2", 2, ""}, {"gpu:a100:4", 4, "a100"}, {"gpu:a100:4(S:0-1)", 4, "a100"},
		{"gpu:a100:2(S:0),gpu:v100:1,shard:8", 3, "a100,v100"}, {"mps:100", 0, ""}, {"gpu:a100:2,gpu:a100:2", 4, "a100"},
	} {
		if n, kind := gpus(tc.gres); n != tc.n || kind != tc.kind {
			t.Errorf("gpus(%q) = %d, %q; want %d, %q", tc.gres, n, kind, tc.n, tc.kind)
		}
	}
}

func TestNodeState(t *testing.T) {
	for _, tc := range []struct {
		state                  string
		flags                  []string
		want                   string
		ready, idle, allocated bool
	}{
		{`"idle"`, nil, "idle", true, true, false},
		{`"mixed"`, nil, "mixed", true, false, true},
		{`"allocated"`, []string{"COMPLETING"}, "allocated+completing", true, false, true},
		{`"idle"`, []string{"DRAIN"}, "idle+drain", false, false, false},
		{`"down"`, nil, "down", false, false, false},
		{`["IDLE","DRAIN"]`, nil, "idle+drain", false, false, false},
		{`["MIXED"]`, nil, "mixed", true, false, true},
	} {
		var n nodeInfo
		if err := json.Unmarshal([]byte(`{"state":`+tc.state+`}`), &n); err != nil {
			t.Fatal(err)
		}
		n.StateFlags = tc.flags
		state, ready, idle, allocated := nodeState(n)
		if state != tc.want || ready != tc.ready || idle != tc.idle || allocated != tc.allocated {
			t.Errorf("nodeState(%s %v) = %q %v %v %v; want %q %v %v %v", tc.state, tc.flags, state, ready, idle, allocated, tc.want, tc.ready, tc.idle, tc.allocated)
		}
	}
}

func TestMinutes(t *testing.T) {
	for raw, want := range map[string]int{`-1`: 0, `60`: 60, `4294967295`: 0, `{"set":true,"infinite":false,"number":30}`: 30, `{"set":true,"infinite":true,"number":0}`: 0, `null`: 0} {
		if got := minutes(json.RawMessage(raw)); got != want {
			t.Errorf("minutes(%s) = %d, want %d", raw, got, want)
		}
	}
}
