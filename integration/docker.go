package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// ImageEnv names the environment variable that selects the Redis image.
const ImageEnv = "QUORUMLOCK_REDIS_IMAGE"

// DefaultImage is the image used when ImageEnv is not set: the official one,
// for machines that can pull it. `make image` builds quorumlock/redis:local
// offline instead, and the Makefile points ImageEnv at it.
const DefaultImage = "redis:7"

// Label marks every container the harness starts, so that containers left
// behind by a run that was killed can be found and removed by the next one.
// Its value says which process owns the container: "hostname/pid".
const Label = "org.quorumlock.integration"

// ErrNoDocker is matched by Connect's error when no Docker engine answers.
var ErrNoDocker = errors.New("docker engine not reachable")

// ErrNoImage is matched by Connect's error when the image is not present
// locally. The harness never pulls an image: it would hang or fail on a
// machine without a registry, and should be a deliberate step elsewhere.
var ErrNoImage = errors.New("redis image not present")

// Image returns the image the suite runs: $QUORUMLOCK_REDIS_IMAGE, or
// DefaultImage.
func Image() string {
	if img := os.Getenv(ImageEnv); img != "" {
		return img
	}
	return DefaultImage
}

// Docker is a connection to a Docker engine on which a Redis image is known
// to be present. It is safe for concurrent use.
type Docker struct {
	pool       *dockertest.Pool
	repository string
	tag        string
	owner      string

	mu   sync.Mutex
	seq  int
	live map[string]bool // containers started and not yet removed, by ID
}

// Connect connects to the engine named by DOCKER_HOST (or the platform's
// default socket) and checks that image ("repository[:tag]", tag "latest" if
// omitted) is present locally. Errors match ErrNoDocker or ErrNoImage and say
// what to do.
func Connect(ctx context.Context, image string) (*Docker, error) {
	p, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	if err := p.Client.PingWithContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	repo, tag := splitImage(image)
	if _, err := p.Client.InspectImage(repo + ":" + tag); err != nil {
		if errors.Is(err, dc.ErrNoSuchImage) {
			return nil, fmt.Errorf("%w: %s:%s is not in the local Docker engine: run `make image` "+
				"(builds quorumlock/redis:local from the host's redis-server, no registry needed) and set %s to it, "+
				"or pull it yourself (docker pull %s:%s)", ErrNoImage, repo, tag, ImageEnv, repo, tag)
		}
		return nil, fmt.Errorf("%w: inspecting %s:%s: %v", ErrNoDocker, repo, tag, err)
	}
	host, _ := os.Hostname()
	return &Docker{
		pool:       p,
		repository: repo,
		tag:        tag,
		owner:      host + "/" + strconv.Itoa(os.Getpid()),
		live:       map[string]bool{},
	}, nil
}

// Image returns the image's repository:tag.
func (d *Docker) Image() string { return d.repository + ":" + d.tag }

// splitImage splits "repo[:tag]" where repo may hold a registry's host:port.
func splitImage(image string) (repo, tag string) {
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}

// staleAfter is the age after which a labelled container is removed even if
// its owner cannot be checked (it was started from another host).
const staleAfter = time.Hour

// PurgeLeftovers removes the labelled containers of runs that are over: their
// owning process, on this host, is gone; or they were started from another
// host more than an hour ago. Containers of a run still going are left alone.
// It returns how many it removed.
func (d *Docker) PurgeLeftovers(ctx context.Context) (int, error) {
	list, err := d.pool.Client.ListContainers(dc.ListContainersOptions{
		All: true, Filters: map[string][]string{"label": {Label}}, Context: ctx,
	})
	if err != nil {
		return 0, err
	}
	host, _ := os.Hostname()
	removed := 0
	for _, c := range list {
		owner := c.Labels[Label]
		if owner == d.owner || !over(owner, host, time.Unix(c.Created, 0)) {
			continue
		}
		if err := d.remove(ctx, c.ID); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// over reports whether the run that owns a container has ended.
func over(owner, host string, created time.Time) bool {
	if time.Since(created) > staleAfter {
		return true // no run lasts this long; the pid may have been reused
	}
	h, pidText, ok := strings.Cut(owner, "/")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || h != host {
		return false
	}
	return !processAlive(pid)
}

// PurgeOwn removes every container this Docker started that is still there,
// for a test binary that is being interrupted before its cleanups run.
func (d *Docker) PurgeOwn(ctx context.Context) {
	d.mu.Lock()
	ids := make([]string, 0, len(d.live))
	for id := range d.live {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		_ = d.remove(ctx, id)
	}
}

// remove deletes a container whatever its state (paused included), with its
// anonymous volumes.
func (d *Docker) remove(ctx context.Context, id string) error {
	// A paused container is frozen; unfreeze it so it can be killed.
	_ = d.pool.Client.UnpauseContainer(id)
	err := d.pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true, Context: ctx})
	var gone *dc.NoSuchContainer
	if err != nil && !errors.As(err, &gone) {
		return fmt.Errorf("removing container %.12s: %w", id, err)
	}
	d.mu.Lock()
	delete(d.live, id)
	d.mu.Unlock()
	return nil
}

// nextName returns a container name unique to this process.
func (d *Docker) nextName() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	return fmt.Sprintf("quorumlock-it-%d-%d", os.Getpid(), d.seq)
}

func (d *Docker) track(id string) {
	d.mu.Lock()
	d.live[id] = true
	d.mu.Unlock()
}
