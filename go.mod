module github.com/quorumlock/quorumlock

go 1.26.8

require (
	github.com/gomodule/redigo v1.9.3 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
