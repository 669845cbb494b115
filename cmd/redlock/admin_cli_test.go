package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
)

func TestStatusAndResetReportWhatIsTrue(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	l := holdLock(t, servers, "report", time.Minute)
	tok := l.Token()

	r := runCLI(t, cliBound, env, "status", "report")
	if r.code != exitOK || strings.Count(r.stdout, tok[:shortToken]) != 4 || !strings.Contains(r.stdout, "HELD by "+tok[:shortToken]+" on 3 of 3 nodes (quorum 2)") {
		t.Fatalf("status of a held lock: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, cliBound, env, "status", "report", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if r.code != exitOK || rep.Verdict != "held" || rep.Holder != tok || rep.HolderNodes != 3 || rep.Quorum != 2 || len(rep.Nodes) != 3 {
		t.Fatalf("--json: exit %d, %+v", r.code, rep)
	}
	for i, n := range rep.Nodes {
		if n.Addr != servers[i].Addr || !n.Held || n.Token != tok || n.TTLms == nil || *n.TTLms <= 0 || *n.TTLms > 60000 || n.Error != "" {
			t.Errorf("--json node %d: %+v", i, n)
		}
	}

	// One node down: still held on 2 of 3; reset removes the 2 copies it
	// can reach and says the third node failed.
	if err := servers[2].Kill(); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, cliBound, env, "status", "report")
	if r.code != exitOK || !strings.Contains(r.stdout, servers[2].Addr+"  error: ") || !strings.Contains(r.stdout, "on 2 of 3 nodes") {
		t.Fatalf("status with a node down: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, cliBound, env, "reset", "report")
	if r.code != exitFailed || strings.Count(r.stdout, "removed 1") != 2 ||
		!strings.Contains(r.stdout, `removed 2 keys of lock "report" on 2 of 3 nodes; 1 nodes failed`) {
		t.Fatalf("reset with a node down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, cliBound, env, "status", "report")
	if r.code != exitFree || !strings.Contains(r.stdout, "FREE") {
		t.Fatalf("status after reset: exit %d\n%s", r.code, r.stdout)
	}
	// Two of three down: nothing can be told.
	if err := servers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if r = runCLI(t, cliBound, env, "status", "report"); r.code != exitUnknown || !strings.Contains(r.stdout, "UNKNOWN: 1 of 3 nodes answered") {
		t.Fatalf("status with 2 of 3 nodes down: exit %d\n%s", r.code, r.stdout)
	}
}

func TestResetAllRemovesEveryLockUnderThePrefix(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	for _, name := range []string{"a", "b", "c"} {
		holdLock(t, servers, name, time.Minute)
	}
	c, err := redis.Dial("tcp", servers[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "unrelated", "1"); err != nil {
		t.Fatal(err)
	}

	if r := runCLI(t, cliBound, env, "reset", "--all"); r.code != exitUsage || !strings.Contains(r.stderr, "add --yes") {
		t.Fatalf("reset --all without --yes: exit %d, stderr %q", r.code, r.stderr)
	}
	r := runCLI(t, cliBound, env, "reset", "--all", "--yes")
	if r.code != exitOK || !strings.Contains(r.stdout, `on 3 of 3 nodes`) || !strings.Contains(r.stdout, servers[0].Addr+"  removed 3") {
		t.Fatalf("reset --all --yes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if keys := userKeys(t, c); len(keys) != 1 || keys[0] != "unrelated" {
		t.Errorf("node 0 holds %q after reset --all, want only the unrelated key", keys)
	}
}

func TestBadInputGivesOneLineAndStatus2(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no command", nil, []string{}, "usage: redlock COMMAND"},
		{"unknown command", nil, []string{"lock"}, `unknown command "lock"`},
		{"unknown flag", nil, []string{"status", "x", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad duration", nil, []string{"run", "--name", "x", "--ttl", "soon", "--", "true"}, `invalid value "soon" for flag -ttl`},
		{"run without name", nil, []string{"run", "--", "true"}, "--name is required"},
		{"run without command", nil, []string{"run", "--name", "x"}, "no command to run"},
		{"wait and no-wait", []string{nodesEnv + "=redis://127.0.0.1:1"}, []string{"run", "--name", "x", "--wait", "1s", "--no-wait", "--", "true"}, "not both"},
		{"status without name", nil, []string{"status"}, "want exactly one lock NAME"},
		{"no nodes", nil, []string{"status", "x"}, "no nodes: pass --nodes URL,URL,... or set REDLOCK_NODES"},
		{"bad scheme", nil, []string{"status", "x", "--nodes", "http://h:1"}, "scheme must be redis:// or rediss://"},
		{"bad port", nil, []string{"status", "x", "--nodes", "redis://h:99999"}, "invalid port"},
		{"bad port in env", []string{nodesEnv + "=redis://h:1,h:0"}, []string{"reset", "x"}, "invalid port"},
		{"duplicate node", nil, []string{"status", "x", "--nodes", "redis://h:1,h:1"}, "are the same address h:1"},
		{"password hidden", nil, []string{"status", "x", "--nodes", "redis://u:hunter2@h:1/db"}, "u:***@h:1/db"},
		{"reset name and all", nil, []string{"reset", "x", "--all", "--yes"}, "not both"},
		{"demo argument", nil, []string{"demo", "now"}, `unexpected argument "now"`},
		{"bad fence variable", nil, []string{"run", "--name", "x", "--fence-env", "A-B", "--", "true"}, `--fence-env "A-B" is not a valid`},
		{"ttl below the minimum", []string{nodesEnv + "=redis://127.0.0.1:1"}, []string{"run", "--name", "x", "--ttl", "5ms", "--", "true"}, "ttl 5ms is below the minimum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, cliBound, tt.env, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d", r.code, exitUsage)
			}
			if tt.name != "no command" && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "hunter2") {
				t.Errorf("stderr %q, want it to contain %q (and no password)", r.stderr, tt.want)
			}
		})
	}
}

func TestHelpOfEveryCommand(t *testing.T) {
	for _, sc := range subcommands() {
		for _, args := range [][]string{{sc.name, "--help"}, {sc.name, "-h"}, {"help", sc.name}} {
			r := runCLI(t, cliBound, nil, args...)
			if r.code != exitOK || !strings.Contains(r.stdout, "usage: redlock "+sc.name) ||
				!strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--nodes string") {
				t.Errorf("redlock %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
	r := runCLI(t, cliBound, nil, "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "Exit statuses:") {
		t.Errorf("redlock --help: exit %d\n%s", r.code, r.stdout)
	}
}

func TestNodeURLsCarryTheCredentials(t *testing.T) {
	servers := redistest.Start(t, 3)
	for _, s := range servers {
		redisConfigSet(t, s, "requirepass", "s3cret")
	}
	urls := func(pass string) []string {
		var us []string
		for _, s := range servers {
			us = append(us, "redis://:"+pass+"@"+s.Addr)
		}
		return []string{nodesEnv + "=" + strings.Join(us, ",")}
	}
	if r := runCLI(t, cliBound, urls("s3cret"), "run", "--name", "auth", "--", "true"); r.code != 0 {
		t.Fatalf("run with the password: exit %d\n%s", r.code, r.stderr)
	}
	r := runCLI(t, cliBound, urls("wrong-pass"), "status", "auth")
	if r.code != exitUnknown || strings.Count(r.stdout, "error: ") != 3 {
		t.Fatalf("status with a wrong password: exit %d, want %d with 3 node errors\n%s", r.code, exitUnknown, r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "wrong-pass") {
		t.Errorf("the password shows in the output:\n%s%s", r.stdout, r.stderr)
	}
}

// redisConfigSet sets a server's configuration parameter.
func redisConfigSet(t *testing.T, s *redistest.Server, param, value string) {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("CONFIG", "SET", param, value); err != nil {
		t.Fatal(err)
	}
}

// userKeys returns the node's keys but the library's own bookkeeping, which
// lives under a reserved leading NUL byte, outside any prefix.
func userKeys(t *testing.T, c redis.Conn) []string {
	t.Helper()
	keys, err := redis.Strings(c.Do("KEYS", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var user []string
	for _, k := range keys {
		if !strings.HasPrefix(k, "\x00") {
			user = append(user, k)
		}
	}
	return user
}
