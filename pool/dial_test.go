package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/pool"
)

// knownBug skips a test that shows a reported, not yet fixed bug, unless
// QUORUMLOCK_SHOW_BUGS=1 asks to run it.
func knownBug(t testing.TB, desc string) {
	t.Helper()
	if os.Getenv("QUORUMLOCK_SHOW_BUGS") != "1" {
		t.Skip("BUG: " + desc + " (QUORUMLOCK_SHOW_BUGS=1 runs this test)")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want pool.Endpoint
	}{
		{"redis://127.0.0.1", pool.Endpoint{Addr: "127.0.0.1:6379"}},
		{"redis://127.0.0.1:7000", pool.Endpoint{Addr: "127.0.0.1:7000"}},
		{"redis://redis-a.example:6380/3", pool.Endpoint{Addr: "redis-a.example:6380", DB: 3}},
		{"redis://redis-a.example/", pool.Endpoint{Addr: "redis-a.example:6379"}},
		{"redis://:s3cret@h", pool.Endpoint{Addr: "h:6379", Password: "s3cret"}},
		{"redis://alice@h", pool.Endpoint{Addr: "h:6379", Username: "alice"}},
		{"rediss://alice:s3cret@h:6390/1", pool.Endpoint{Addr: "h:6390", TLS: true, Username: "alice", Password: "s3cret", DB: 1}},
		{"redis://[::1]", pool.Endpoint{Addr: "[::1]:6379"}},
		{"redis://[::1]:6380", pool.Endpoint{Addr: "[::1]:6380"}},
		// Reserved characters of a password are percent-encoded.
		{"redis://:p%40ss%23word%2F@h", pool.Endpoint{Addr: "h:6379", Password: "p@ss#word/"}},
		// An unencoded @ in the password: the last @ ends the user info.
		{"redis://u:p@ss@h", pool.Endpoint{Addr: "h:6379", Username: "u", Password: "p@ss"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			got, err := pool.ParseURL(tc.url)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseURL = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	const password = "Zq7sEcReT"
	for _, tc := range []struct {
		url  string
		says string
	}{
		{"", "scheme"},
		{"127.0.0.1:6379", "colon"},
		{"http://u:" + password + "@h", "scheme"},
		{"tcp://h:6379", "scheme"},
		{"redis://", "host"},
		{"redis://:" + password + "@", "host"},
		{"redis:h:6379", "host"},
		{"redis://u:" + password + "@h:0", "port"},
		{"redis://u:" + password + "@h:65536", "port"},
		{"redis://u:" + password + "@h:-1", "port"},
		{"redis://u:" + password + "@h:6379/x", "database"},
		{"redis://u:" + password + "@h:6379/-1", "database"},
		{"redis://u:" + password + "@h:6379/0?timeout=1s", "query"},
		{"redis://u:" + password + "@h:6379/0#frag", "fragment"},
		{"redis://u:" + password + "@[::1", "]"},
		{"redis://u:" + password + "@ho st", "host"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := pool.ParseURL(tc.url)
			if err == nil {
				t.Fatalf("ParseURL(%q) succeeded", tc.url)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "pool: node URL") || !strings.Contains(msg, tc.says) {
				t.Errorf("error %q does not say what is wrong (%q)", msg, tc.says)
			}
			if strings.Contains(msg, password) {
				t.Errorf("error shows the password: %q", msg)
			}
			if _, err := pool.Dial(tc.url); err == nil || strings.Contains(err.Error(), password) {
				t.Errorf("Dial(%q) = %v", tc.url, err)
			}
		})
	}
}

// Generated passwords often hold '#', '/' or '?'. Unencoded, they end the
// URL's authority early, and url.Parse's own error ("invalid port
// \":hunter2\" after host") repeats what came before them: most of the
// password.
func TestParseURLErrorsNeverShowPasswordParts(t *testing.T) {
	for _, password := range []string{"hunter2#x", "s3cr/etpass", "pass?word1", "Zq7s%zzEcReT"} {
		_, err := pool.ParseURL("redis://user:" + password + "@h:6379")
		if err == nil {
			continue // parsed; nothing shown
		}
		for _, part := range regexp.MustCompile(`[A-Za-z0-9]{4,}`).FindAllString(password, -1) {
			if strings.Contains(err.Error(), part) {
				t.Errorf("password %q: error shows %q: %v", password, part, err)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://h:6379":              "redis://h:6379",
		"redis://:pw@h:6379":          "redis://:***@h:6379",
		"redis://alice:pw@h:6379/2":   "redis://alice:***@h:6379/2",
		"rediss://alice@h":            "rediss://alice@h",
		"redis://u:p@ss@h":            "redis://u:***@h",
		"u:pw@h":                      "u:***@h",
		"redis://u:hunter2#frag@host": "redis://u:***@host",
	} {
		if got := pool.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEndpointString(t *testing.T) {
	for _, tc := range []struct {
		ep   pool.Endpoint
		want string
	}{
		{pool.Endpoint{Addr: "h:6379"}, "redis://h:6379/0"},
		{pool.Endpoint{Addr: "h:6379", TLS: true, DB: 2}, "rediss://h:6379/2"},
		{pool.Endpoint{Addr: "h:6379", Password: "pw"}, "redis://:***@h:6379/0"},
		{pool.Endpoint{Addr: "h:6379", Username: "alice"}, "redis://alice@h:6379/0"},
		{pool.Endpoint{Addr: "h:6379", Username: "alice", Password: "pw"}, "redis://alice:***@h:6379/0"},
	} {
		if got := tc.ep.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.ep, got, tc.want)
		}
		if ep, err := pool.ParseURL(tc.ep.String()); err != nil || ep.Addr != tc.ep.Addr || ep.TLS != tc.ep.TLS || ep.DB != tc.ep.DB {
			t.Errorf("String() does not parse back: %+v, %v", ep, err)
		}
	}
}

func TestDialOptions(t *testing.T) {
	for name, opt := range map[string]pool.DialOption{
		"zero dial timeout":      pool.WithDialTimeout(0),
		"negative dial timeout":  pool.WithDialTimeout(-time.Second),
		"negative read timeout":  pool.WithReadTimeout(-time.Second),
		"negative write timeout": pool.WithWriteTimeout(-time.Second),
		"negative max idle":      pool.WithMaxIdle(-1),
		"negative max active":    pool.WithMaxActive(-1),
	} {
		if p, err := pool.Dial("redis://127.0.0.1:6379", opt); err == nil {
			p.Close()
			t.Errorf("%s: Dial succeeded", name)
		}
	}
	p, err := pool.Dial("redis://127.0.0.1:6379",
		pool.WithDialTimeout(time.Second), pool.WithReadTimeout(0), pool.WithWriteTimeout(0),
		pool.WithMaxIdle(0), pool.WithMaxActive(8))
	if err != nil {
		t.Fatalf("Dial with valid options: %v", err)
	}
	defer p.Close()
	if rp := p.Redis(); rp.MaxActive != 8 || rp.MaxIdle != 0 || !rp.Wait {
		t.Errorf("redigo pool: MaxActive %d, MaxIdle %d, Wait %v", rp.MaxActive, rp.MaxIdle, rp.Wait)
	}
}

// Dial does not connect: an unreachable node is reported by the call that
// needed it, naming the node without its password.
func TestDialUnreachable(t *testing.T) {
	const password = "Zq7sEcReT"
	p, err := pool.Dial("redis://alice:"+password+"@127.0.0.1:1", pool.WithDialTimeout(time.Second))
	if err != nil {
		t.Fatalf("Dial connected eagerly: %v", err)
	}
	defer p.Close()
	if p.Addr() != "127.0.0.1:1" {
		t.Errorf("Addr() = %q", p.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = p.Eval(ctx, &pool.Script{Name: "one", Src: "return 1"}, nil)
	if err == nil {
		t.Fatal("Eval on a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "alice:***@") {
		t.Errorf("error does not name the node: %q", msg)
	}
	if strings.Contains(msg, password) {
		t.Errorf("error shows the password: %q", msg)
	}
}

func TestNew(t *testing.T) {
	rp := &redis.Pool{Dial: func() (redis.Conn, error) { return nil, errors.New("unused") }}
	if _, err := pool.New(nil, "h:6379"); err == nil {
		t.Error("New(nil) succeeded")
	}
	for _, addr := range []string{"", "h", "h:", ":6379", "h:0", "h:65536", "h:x"} {
		if _, err := pool.New(rp, addr); err == nil {
			t.Errorf("New(%q) succeeded", addr)
		}
	}
	for addr, want := range map[string]string{"h:6379": "h:6379", "[::1]:6379": "[::1]:6379", "10.0.0.1:7000": "10.0.0.1:7000"} {
		p, err := pool.New(rp, addr)
		if err != nil {
			t.Errorf("New(%q): %v", addr, err)
			continue
		}
		if p.Addr() != want || p.Redis() != rp {
			t.Errorf("New(%q): Addr %q", addr, p.Addr())
		}
	}
}

func TestServerError(t *testing.T) {
	for _, tc := range []struct {
		msg                 string
		wrongType, noScript bool
	}{
		{"WRONGTYPE Operation against a key holding the wrong kind of value", true, false},
		{"NOSCRIPT No matching script. Please use EVAL.", false, true},
		{"ERR unknown command", false, false},
		{"LOADING Redis is loading the dataset in memory", false, false},
	} {
		err := fmt.Errorf("node a:1: %w", &pool.ServerError{Msg: tc.msg})
		if got := errors.Is(err, pool.ErrWrongType); got != tc.wrongType {
			t.Errorf("%q: Is(ErrWrongType) = %v", tc.msg, got)
		}
		if got := errors.Is(err, pool.ErrNoScript); got != tc.noScript {
			t.Errorf("%q: Is(ErrNoScript) = %v", tc.msg, got)
		}
		var se *pool.ServerError
		if !errors.As(err, &se) || se.Msg != tc.msg || se.Error() != "redis: "+tc.msg {
			t.Errorf("%q: As = %v", tc.msg, se)
		}
	}
}

func ExampleParseURL() {
	ep, err := pool.ParseURL("rediss://locker:s3cret@redis-a.internal:6380/2")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ep.Addr, ep.TLS, ep.Username, ep.DB)
	fmt.Println(ep) // the password is never shown

	_, err = pool.ParseURL("redis://locker:s3cret@redis-a.internal:6380/two")
	fmt.Println(err)
	// Output:
	// redis-a.internal:6380 true locker 2
	// rediss://locker:***@redis-a.internal:6380/2
	// pool: node URL "redis://locker:***@redis-a.internal:6380/two": the database must be a non-negative number
}
