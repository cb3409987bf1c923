module github.com/amtsbote/amtsbote

go 1.26.8

require (
	github.com/beevik/etree v1.8.1 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
