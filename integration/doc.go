// Package integration runs the lock against real Redis servers in Docker
// containers and injects the faults Redlock must survive: nodes killed,
// paused (hung), restarted with and without persistence, cut off from the
// clients, slowed down. Several clients contend for one lock meanwhile, each
// recording its critical sections, and internal/history checks that no two
// of them overlapped.
//
// The harness (Docker, Cluster, Node, Proxy, Workload) serves the suite in
// this package's tests. It uses github.com/ory/dockertest/v3 and never pulls
// an image: the image named by QUORUMLOCK_REDIS_IMAGE (default redis:7) must
// be present; `make image` builds quorumlock/redis:local from the host's
// redis-server without a registry.
//
// Without a Docker engine or the image the tests skip, saying why; with
// QUORUMLOCK_REQUIRE_DOCKER=1 they fail instead. `go test -short` skips them.
package integration
