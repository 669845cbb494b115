package pooltest

import (
	"strconv"
	"sync"
	"testing"
)

// testConcurrent runs many calls at once on one pool: each gets its own
// answer (run it with -race).
func testConcurrent(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	const goroutines, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*calls)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := evalEcho(t.Context(), p, strconv.Itoa(g)+"/"+strconv.Itoa(i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
