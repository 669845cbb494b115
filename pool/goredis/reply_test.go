package goredis

import (
	"errors"
	"math/big"
	"reflect"
	"sort"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
)

// redisError is an error reply as go-redis's reader puts it inside arrays.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

var _ redis.Error = redisError("")

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"integer", int64(7), int64(7)},
		{"string", "x", "x"},
		{"bytes", []byte("x"), "x"},
		{"true (RESP3)", true, int64(1)},
		{"false (RESP3)", false, nil},
		{"double (RESP3)", 1.5, "1.5"},
		{"big number (RESP3)", new(big.Int).Lsh(big.NewInt(1), 70), "1180591620717411303424"},
		{"nested array", []any{int64(1), []any{true, []byte("b")}, nil}, []any{int64(1), []any{int64(1), "b"}, nil}},
		{"error inside an array", []any{redisError("WRONGTYPE x")}, []any{&pool.ServerError{Msg: "WRONGTYPE x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalize(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("normalize(%#v) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

// TestNormalizeMap checks that a RESP3 map becomes RESP2's flat array of
// keys and values (in no particular order, as maps have none).
func TestNormalizeMap(t *testing.T) {
	got, ok := normalize(map[any]any{"a": int64(1), "b": true}).([]any)
	if !ok || len(got) != 4 {
		t.Fatalf("normalize(map) = %#v, want 4 elements", got)
	}
	pairs := []string{}
	for i := 0; i < len(got); i += 2 {
		pairs = append(pairs, got[i].(string)+"="+reflect.ValueOf(got[i+1]).String())
	}
	sort.Strings(pairs)
	want := []string{"a=<int64 Value>", "b=<int64 Value>"}
	if !reflect.DeepEqual(pairs, want) {
		t.Errorf("pairs %v, want %v", pairs, want)
	}
}

func TestScrub(t *testing.T) {
	err := scrub(errors.New("auth with hunter2 failed"), "hunter2")
	if err.Error() != "auth with *** failed" {
		t.Errorf("scrub: %q", err)
	}
	orig := errors.New("no secret here")
	if scrub(orig, "hunter2") != orig || scrub(orig, "") != orig {
		t.Error("scrub changed an error without the password")
	}
}
