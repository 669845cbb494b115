package pooltest

import (
	"context"
	"strings"
	"testing"

	"github.com/quorumlock/quorumlock/pool"
)

func testAuth(t *testing.T, f Factory) {
	const password = "pooltest-S3cret"
	const wrong = "pooltest-Wr0ng"
	s := server(t, "--requirepass", password)
	host := s.Addr

	for _, url := range []string{
		"redis://:" + password + "@" + host,
		"redis://default:" + password + "@" + host,
	} {
		t.Run("right password "+pool.Redact(url), func(t *testing.T) {
			p := open(t, f, url, nil)
			if err := evalEcho(t.Context(), p, "ok"); err != nil {
				t.Fatalf("Eval: %v", err)
			}
		})
	}

	// A refused password is reported by the call that needed the
	// connection, names the failure, and never shows either password.
	for _, tc := range []struct {
		name, url, want string
	}{
		{"wrong password", "redis://:" + wrong + "@" + host, "WRONGPASS"},
		{"wrong user", "redis://nobody:" + password + "@" + host, "WRONGPASS"},
		{"no password", "redis://" + host, "NOAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f(tc.url, nil)
			if err == nil {
				closeAtEnd(t, p)
				err = within(t, "Eval", func() error {
					ctx, cancel := context.WithTimeout(t.Context(), hangBound)
					defer cancel()
					return evalEcho(ctx, p, "x")
				})
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, wrong) || strings.Contains(msg, password) {
				t.Errorf("error shows a password: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if tc.want == "WRONGPASS" && isServerError(err) {
				t.Errorf("a refused login reported as an error reply to the command: %v", err)
			}
			// Subscribe logs in on a connection of its own.
			if sub, ok := p.(pool.Subscriber); ok && tc.want == "WRONGPASS" {
				sc, err := subscribe(t, sub, hangBound)
				if err == nil {
					_ = sc.Close()
					t.Fatal("Subscribe with a refused login: no error")
				}
				if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, password) {
					t.Errorf("Subscribe error shows a password: %q", msg)
				}
			}
		})
	}
}
