//go:build !linux

package proxy

import "net"

// unacked cannot read a socket's send queue here: -1 (see the Linux
// version).
func unacked(net.Conn) int { return -1 }
