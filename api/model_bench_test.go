package api_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/atelier-ml/atelier"
)

// BenchmarkModelRegisterFromRun registers a real 1 GB folder of run outputs (16 files of
// 64 MiB, uploaded and stored) over HTTP: the version references the stored objects, so the
// time does not grow with the bytes.
func BenchmarkModelRegisterFromRun(b *testing.B) {
	s := MustStack(b)
	ctx := Ctx(b)
	run := MustRun(b, s.Client, atelier.RunCreate{})
	buf := make([]byte, 64<<20)
	rand.Read(buf)
	for i := range 16 {
		buf[0] = byte(i)
		if _, err := s.Client.UploadFile(ctx, "default", run.ID, fmt.Sprintf("outputs/model/part-%02d.bin", i), bytes.NewReader(buf), ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		v, err := s.Client.RegisterModel(ctx, "default", atelier.ModelRegister{Name: "big", RunID: run.ID, Path: "outputs/model"})
		if err != nil {
			b.Fatal(err)
		}
		if v.Size != 1<<30 {
			b.Fatalf("registered %d bytes, want 1 GiB", v.Size)
		}
	}
}
