package series

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/atelier-ml/atelier"
)

// version is the first byte of every encoded chunk, so the format can change without a migration.
const version = 1

// minPointSize is the fewest bytes a point can take (a one-byte step delta, a one-byte timestamp
// delta, eight value bytes). It bounds the count a chunk of a given size may claim, so corrupt
// input cannot make Decode allocate more than a small multiple of its size.
const minPointSize = 1 + 1 + 8

// Encode appends the encoding of p to dst:
//
//	version  byte (1)
//	count    uvarint
//	steps    count zigzag varints, each the difference to the previous step (the first to 0)
//	times    count zigzag varints, likewise
//	values   count × 8 bytes, the little-endian IEEE 754 bits
//
// Deltas make the usual step+1 one byte and a timestamp a byte or two. Values are stored raw
// rather than XOR-compressed: decoding them is a copy, and decode speed matters more than size.
// Raw bits keep NaN payloads, infinities and -0 exactly. Differences wrap around, so any int64
// sequence (out of order, huge jumps) round-trips.
//
// Encode panics if p's columns have different lengths.
func Encode(dst []byte, p Points) []byte {
	n := p.Len()
	if len(p.Timestamps) != n || len(p.Values) != n {
		panic("series: Encode of Points with columns of different lengths")
	}
	dst = slices.Grow(dst, 1+binary.MaxVarintLen64+n*(2+2+8))
	dst = append(dst, version)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = appendDeltas(dst, p.Steps)
	dst = appendDeltas(dst, p.Timestamps)
	for _, v := range p.Values {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

func appendDeltas(dst []byte, xs []int64) []byte {
	var prev int64
	for _, x := range xs {
		dst = binary.AppendVarint(dst, x-prev) // AppendVarint zigzags: small negatives stay small
		prev = x
	}
	return dst
}

// Decode appends the points encoded in b to into. Corrupt input gives an error (code EINTERNAL:
// stored data is not the caller's fault) and leaves into unchanged.
func Decode(b []byte, into *Points) error {
	if len(b) == 0 {
		return corrupt("empty chunk")
	}
	if b[0] != version {
		return corrupt("unknown version %d", b[0])
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 {
		return corrupt("bad count")
	}
	b = b[k:]
	if count > uint64(len(b)/minPointSize) {
		return corrupt("count %d does not fit in %d bytes", count, len(b))
	}
	n := int(count)

	m := into.Len()
	steps := slices.Grow(into.Steps, n)[:m+n]
	times := slices.Grow(into.Timestamps, n)[:m+n]
	values := slices.Grow(into.Values, n)[:m+n]
	var err error
	if b, err = decodeDeltas(b, steps[m:]); err != nil {
		return err
	}
	if b, err = decodeDeltas(b, times[m:]); err != nil {
		return err
	}
	if len(b) != 8*n {
		return corrupt("values take %d bytes, want %d", len(b), 8*n)
	}
	vs := values[m:]
	for i := range vs {
		vs[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	into.Steps, into.Timestamps, into.Values = steps, times, values
	return nil
}

// decodeDeltas fills dst from len(dst) delta varints at the start of b and returns the rest of b.
func decodeDeltas(b []byte, dst []int64) ([]byte, error) {
	var prev int64
	i := 0
	for j := range dst {
		var u uint64
		// Most deltas are one byte; decoding those inline is several times faster than a call.
		if i < len(b) && b[i] < 0x80 {
			u = uint64(b[i])
			i++
		} else {
			var k int
			u, k = binary.Uvarint(b[i:])
			if k <= 0 {
				return nil, corrupt("bad varint at byte %d", i)
			}
			i += k
		}
		prev += int64(u>>1) ^ -int64(u&1) // undo zigzag
		dst[j] = prev
	}
	return b[i:], nil
}

func corrupt(format string, args ...any) error {
	return atelier.Errorf(atelier.EINTERNAL, "series: corrupt chunk: "+format, args...)
}
