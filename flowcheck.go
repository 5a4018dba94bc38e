// Package flowcheck holds the files the collector binary embeds, so that it
// runs on a fresh machine with nothing but itself: the default configuration
// (config.example.yaml, the file operators copy and edit) and the shipped Lua
// host checks.
package flowcheck

import "embed"

// DefaultConfig is config.example.yaml, used when no --config is given.
//
//go:embed config.example.yaml
var DefaultConfig []byte

// Scripts holds the shipped host checks under "scripts/", used when the
// configured script directory does not exist on disk.
//
//go:embed scripts/*.lua
var Scripts embed.FS
