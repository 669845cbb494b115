package pooltest

import (
	"context"
	"testing"
	"time"
)

// testScriptsByServerSHA checks that scripts run by EVALSHA (never EVAL, which
// resends the source every time) and are loaded once.
func testScriptsByServerSHA(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	admin(t, s, "CONFIG", "RESETSTAT")
	for i := range 3 {
		if err := evalEcho(t.Context(), p, "call"+string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls(t, s, "eval"); n != 0 {
		t.Errorf("EVAL ran %d times, want 0 (scripts go by SHA)", n)
	}
	if n := calls(t, s, "evalsha"); n != 3 {
		t.Errorf("EVALSHA ran %d times, want 3", n)
	}
	if n := calls(t, s, "script|load"); n != 1 {
		t.Errorf("SCRIPT LOAD ran %d times, want 1 (the SHA is cached)", n)
	}
}

func testNoScriptAfterFlush(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	ctx := t.Context()
	if err := evalEcho(ctx, p, "before"); err != nil {
		t.Fatal(err)
	}
	admin(t, s, "SCRIPT", "FLUSH")
	admin(t, s, "CONFIG", "RESETSTAT")
	if err := evalEcho(ctx, p, "after flush"); err != nil {
		t.Fatalf("Eval after SCRIPT FLUSH: %v (NOSCRIPT must be recovered by the pool)", err)
	}
	if n := calls(t, s, "script|load"); n != 1 {
		t.Errorf("SCRIPT LOAD ran %d times after the flush, want 1", n)
	}
	if err := evalEcho(ctx, p, "again"); err != nil {
		t.Fatal(err)
	}
}

// testNoScriptAfterRestart restarts the server, which forgets its scripts and
// closes every connection. A pooled connection may fail once when next used
// (the adapter cannot know it died), so a few attempts are allowed; the
// script must then run without the caller loading it.
func testNoScriptAfterRestart(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	if err := evalEcho(t.Context(), p, "before"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	const attempts = 3
	var errs []error
	for i := range attempts {
		err := within(t, "Eval after a restart", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), hangBound)
			defer cancel()
			return evalEcho(ctx, p, "after restart")
		})
		if err == nil {
			return
		}
		errs = append(errs, err)
		if isServerError(err) {
			t.Fatalf("attempt %d after a restart: error reply %v (NOSCRIPT must be recovered by the pool)", i+1, err)
		}
		// The adapter may report a dead connection; give a dial breaker
		// (go-redis probes once a second) the time to notice the server
		// is back.
		time.Sleep(time.Duration(i+1) * 500 * time.Millisecond)
	}
	t.Fatalf("no success in %d attempts after a restart: %v", attempts, errs)
}
