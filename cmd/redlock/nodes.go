package main

import (
	"errors"
	"strings"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// nodesEnv names the environment variable read when --nodes is not given.
const nodesEnv = "REDLOCK_NODES"

// nodeFlags are the flags every command that talks to nodes shares.
type nodeFlags struct {
	list   string
	prefix string
}

func (cmd *command) addNodeFlags() *nodeFlags {
	nf := &nodeFlags{}
	cmd.fs.StringVar(&nf.list, "nodes", "", "comma-separated node URLs: redis://[user:pass@]host:port[/db], rediss:// for TLS (default $"+nodesEnv+")")
	cmd.fs.StringVar(&nf.prefix, "prefix", redlock.DefaultKeyPrefix, "key prefix of the locks; must match the applications' WithKeyPrefix")
	return nf
}

// urls returns the node URLs from --nodes, else from REDLOCK_NODES. A URL
// without a scheme is taken as redis://.
func (nf *nodeFlags) urls(getenv func(string) string) ([]string, error) {
	list := nf.list
	if list == "" {
		list = getenv(nodesEnv)
	}
	var urls []string
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "redis://" + u
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("no nodes: pass --nodes URL,URL,... or set " + nodesEnv)
	}
	return urls, nil
}

// nodes is a set of dialed nodes.
type nodes []*pool.Redigo

// dial parses every URL and returns a pool per node; it connects to none of
// them. Errors name the URL with its password hidden.
func dial(urls []string) (nodes, error) {
	ns := make(nodes, 0, len(urls))
	for _, u := range urls {
		p, err := pool.Dial(u)
		if err != nil {
			ns.close()
			return nil, err
		}
		ns = append(ns, p)
	}
	return ns, nil
}

func (ns nodes) pools() []pool.Pool {
	ps := make([]pool.Pool, len(ns))
	for i, p := range ns {
		ps[i] = p
	}
	return ps
}

func (ns nodes) close() {
	for _, p := range ns {
		_ = p.Close()
	}
}

// open dials the nodes of nf and returns a Locker over them. The returned
// function closes the Locker and the pools.
func (cmd *command) open(nf *nodeFlags, opts ...redlock.Option) (*redlock.Locker, nodes, func(), error) {
	urls, err := nf.urls(cmd.c.getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	ns, err := dial(urls)
	if err != nil {
		return nil, nil, nil, err
	}
	opts = append([]redlock.Option{redlock.WithKeyPrefix(nf.prefix)}, opts...)
	lk, err := redlock.New(ns.pools(), opts...)
	if err != nil {
		ns.close()
		return nil, nil, nil, err
	}
	return lk, ns, func() { _ = lk.Close(); ns.close() }, nil
}
