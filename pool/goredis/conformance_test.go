package goredis_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/internal/pooltest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/pool/goredis"
)

// longBackstop gives the client read and write timeouts of a minute, so that
// only contexts bound the calls the suite checks.
func longBackstop(o *redis.Options) {
	o.ReadTimeout = time.Minute
	o.WriteTimeout = time.Minute
}

// TestConformance runs the adapter conformance suite on pools from Dial
// (RESP2, set up for locking).
func TestConformance(t *testing.T) {
	pooltest.Run(t, func(url string, tlsConfig *tls.Config) (pool.Pool, error) {
		return goredis.Dial(url, goredis.WithTLSConfig(tlsConfig), goredis.WithClientOptions(longBackstop))
	})
}

// TestConformanceNew runs the suite on pools from New over a client made the
// way an application makes one (go-redis's defaults: RESP3, retried commands,
// context deadlines not applied to sockets), so that the adapter, not the
// client's settings, is what bounds calls and normalises replies. Only dial
// retries are cut to one attempt, which saves the suite seconds of waiting
// on killed nodes.
func TestConformanceNew(t *testing.T) {
	pooltest.Run(t, func(url string, tlsConfig *tls.Config) (pool.Pool, error) {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, err
		}
		if opt.TLSConfig != nil && tlsConfig != nil {
			opt.TLSConfig = tlsConfig.Clone()
		}
		longBackstop(opt)
		opt.DialerRetries = 1
		return goredis.New(redis.NewClient(opt))
	})
}
