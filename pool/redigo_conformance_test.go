package pool_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/pooltest"
	"github.com/quorumlock/quorumlock/pool"
)

// TestRedigoConformance runs the adapter conformance suite on the redigo
// adapter. Its backstop timeouts are a minute, so that only contexts bound
// the calls under test.
func TestRedigoConformance(t *testing.T) {
	pooltest.Run(t, func(url string, tlsConfig *tls.Config) (pool.Pool, error) {
		return pool.Dial(url,
			pool.WithTLSConfig(tlsConfig),
			pool.WithReadTimeout(time.Minute),
			pool.WithWriteTimeout(time.Minute))
	})
}
