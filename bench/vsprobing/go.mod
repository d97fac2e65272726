module github.com/gping/gping/bench/vsprobing

go 1.26.0

replace github.com/gping/gping => ../..

require (
	github.com/gping/gping v0.0.0-00010101000000-000000000000
	github.com/prometheus-community/pro-bing v0.9.1
)

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.21.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
