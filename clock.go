package atelier

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Clock is the domain's time: when records are created, runs start and end, metrics logged
// without a timestamp were logged, leases and tokens expire. The server gives one clock to the
// store, the service and the MLflow API (server.Config.Clock), so that a test pins the time of
// all of them at once.
type Clock func() time.Time

// IDs makes the ids of new records (runs, logged models): NewID, unless a test pins them.
type IDs func() string

// NewID returns a 32-hex-character id that sorts by creation time (48 bits of milliseconds,
// 80 random bits), the same shape as MLflow's run ids. Ids made in the same millisecond by this
// process increase, so runs created together keep their order.
func NewID() string {
	idMu.Lock()
	defer idMu.Unlock()
	ms := uint64(time.Now().UnixMilli())
	if ms <= idLastMS {
		ms = idLastMS
		// Increment the random part as a big-endian number.
		for i := 15; i >= 6; i-- {
			idLast[i]++
			if idLast[i] != 0 {
				break
			}
		}
	} else {
		rand.Read(idLast[6:])
		idLast[6] &= 0x7f // headroom for increments
	}
	idLastMS = ms
	for i := 0; i < 6; i++ {
		idLast[i] = byte(ms >> (40 - 8*i))
	}
	return hex.EncodeToString(idLast[:])
}

var (
	idMu     sync.Mutex
	idLast   [16]byte
	idLastMS uint64
)
