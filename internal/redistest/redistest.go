package redistest

import (
	"errors"
	"os"
	"testing"

	"github.com/quorumlock/quorumlock/pool"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure (CI sets it to 1).
const RequireEnv = "QUORUMLOCK_REQUIRE_REDIS"

// Start starts n servers for t and stops them when t ends. When redis-server
// is missing it skips t, or fails it if QUORUMLOCK_REQUIRE_REDIS=1.
func Start(t testing.TB, n int, extra ...string) []*Server {
	t.Helper()
	servers := make([]*Server, n)
	for i := range servers {
		s, err := StartServer(t.TempDir(), extra...)
		if errors.Is(err, ErrNoBinary) {
			if os.Getenv(RequireEnv) == "1" {
				t.Fatalf("redistest: %v, and %s=1", err, RequireEnv)
			}
			t.Skipf("SKIPPING real-Redis test: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Kill() })
		servers[i] = s
	}
	return servers
}

// Pools returns one redigo pool per server, closed when t ends.
func Pools(t testing.TB, servers []*Server, opts ...pool.DialOption) []pool.Pool {
	t.Helper()
	pools := make([]pool.Pool, len(servers))
	for i, s := range servers {
		p, err := pool.Dial(s.URL(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		pools[i] = p
	}
	return pools
}
