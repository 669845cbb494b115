package goredis_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/pool/goredis"
	"github.com/quorumlock/quorumlock/redlock"
)

// Lock over three independent Redis masters through go-redis.
func Example() {
	ctx := context.Background()
	var nodes []pool.Pool
	for _, url := range []string{"redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"} {
		p, err := goredis.Dial(url)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()
	lock, err := lk.Obtain(ctx, "orders:42", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Release(ctx)
	// ... the critical section, done before lock.ValidUntil() ...
}

// Take locks over clients the application already has. The Pools share the
// clients' connections and settings; closing a Pool closes its client.
func ExampleNew() {
	clients := []*redis.Client{
		redis.NewClient(&redis.Options{Addr: "10.0.0.1:6379", MaxRetries: -1}),
		redis.NewClient(&redis.Options{Addr: "10.0.0.2:6379", MaxRetries: -1}),
		redis.NewClient(&redis.Options{Addr: "10.0.0.3:6379", MaxRetries: -1}),
	}
	var nodes []pool.Pool
	for _, c := range clients {
		p, err := goredis.New(c)
		if err != nil {
			log.Fatal(err)
		}
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()
	_ = lk
}

// A node behind TLS with a private CA: the URL says rediss://, the option
// gives the CA.
func ExampleDial_tls() {
	caPEM, err := os.ReadFile("/etc/redis/tls/ca.crt")
	if err != nil {
		log.Fatal(err)
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(caPEM) {
		log.Fatal("no certificate in ca.crt")
	}
	p, err := goredis.Dial("rediss://:secret@redis.internal:6380/0",
		goredis.WithTLSConfig(&tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
}
