package scripts_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/quorumlock/quorumlock/internal/scripts"
)

// reply builds a Redis reply (as a Pool returns it: nil, int64, int, string,
// []byte, []any nested) from fuzz bytes, plus values no Pool returns
// (float64, bool, a struct) so that decoders meet the
// unexpected too. Each value starts with a tag byte; arrays carry up to 7
// elements and nest at most 6 deep, which bounds the work per input.
type replyReader struct {
	b []byte
}

func (r *replyReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *replyReader) int64() int64 {
	var buf [8]byte
	n := copy(buf[:], r.b)
	r.b = r.b[n:]
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

func (r *replyReader) bytes() []byte {
	n := int(r.byte() % 32)
	n = min(n, len(r.b))
	out := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *replyReader) value(depth int) any {
	switch tag := r.byte() % 10; tag {
	case 0:
		return nil
	case 1:
		return r.int64()
	case 2:
		// Small integers are what replies mostly hold: 0, 1, -1, -2.
		return int64(int8(r.byte())) % 3
	case 3:
		return int(r.int64())
	case 4:
		return r.bytes()
	case 5:
		return string(r.bytes())
	case 6:
		if depth >= 6 {
			return nil
		}
		n := int(r.byte() % 8)
		arr := make([]any, n)
		for i := range arr {
			arr[i] = r.value(depth + 1)
		}
		return arr
	case 7:
		return float64(r.int64())
	case 8:
		return r.byte()%2 == 0
	default:
		return struct{ Msg string }{string(r.bytes())}
	}
}

// FuzzDecode feeds every reply decoder arbitrary nested replies: none may
// panic, and what one accepts must have the shape its script replies with.
func FuzzDecode(f *testing.F) {
	// Well-formed replies of each script, encoded with the tags above.
	f.Add([]byte{6, 6, 2, 1, 2, 0xff, 5, 0, 2, 0, 1, 0xe8, 3, 0, 0, 0, 0, 0, 0, 1, 0x10, 0x27, 0, 0, 0, 0, 0, 0}, 0) // acquire: granted
	f.Add([]byte{6, 6, 2, 0, 1, 0x88, 0x13, 0, 0, 0, 0, 0, 0, 4, 8, 'a', 'b', 'c', 'd', 'e', 'f', '0', '1', 2, 0, 2, 0, 2, 0}, 0)
	f.Add([]byte{2, 1}, 0)                   // flag 1
	f.Add([]byte{6, 3, 2, 1, 2, 0, 2, 1}, 3) // extend-many: 3 flags
	f.Add([]byte{6, 3, 2, 1, 4, 3, 'a', 'b', 'c', 2, 5}, 3)
	f.Add([]byte{6, 2, 5, 1, '0', 6, 2, 4, 1, 'k', 4, 1, 'm'}, 0)           // scan: cursor "0", keys {"k", "m"}
	f.Add([]byte{6, 3, 2, 1, 4, 2, 'v', 'v', 1, 0, 0, 0, 0, 0, 0, 0, 0}, 0) // inspect
	f.Add([]byte{}, -1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		r := &replyReader{b: data}
		v := r.value(0)

		if got, err := scripts.DecodeAcquire(v); err == nil {
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				t.Fatalf("DecodeAcquire accepted %#v", v)
			}
			if flag, _ := scripts.Int(arr[0]); (flag == 1) != got.Granted {
				t.Fatalf("DecodeAcquire(%#v) granted %v", v, got.Granted)
			}
		}
		if _, err := scripts.DecodeFlag(v); err == nil {
			if i, err := scripts.Int(v); err != nil || (i != 0 && i != 1) {
				t.Fatalf("DecodeFlag accepted %#v", v)
			}
		}
		if flags, err := scripts.DecodeFlags(v, n); err == nil && len(flags) != n {
			t.Fatalf("DecodeFlags(%#v, %d) returned %d flags", v, n, len(flags))
		}
		if _, err := scripts.Int(v); err == nil {
			switch v.(type) {
			case int64, int:
			default:
				t.Fatalf("Int accepted %T", v)
			}
		}
		if _, err := scripts.DecodeInspect(v); err == nil {
			if _, ok := v.([]any); !ok {
				t.Fatalf("DecodeInspect accepted %#v", v)
			}
		}
		if got, err := scripts.DecodeScan(v); err == nil {
			arr, ok := v.([]any)
			if !ok || len(arr) != 2 {
				t.Fatalf("DecodeScan accepted %#v", v)
			}
			if keys, _ := arr[1].([]any); len(got.Keys) != len(keys) {
				t.Fatalf("DecodeScan(%#v) returned %d keys", v, len(got.Keys))
			}
		}
	})
}
