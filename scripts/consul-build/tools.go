//go:build tools

// Package tools only exists so that `go mod tidy` keeps the Consul main
// package (and so all of its dependencies) in go.mod and go.sum.
package tools

import _ "github.com/hashicorp/consul"
