package main

import (
	"fmt"
	"strconv"
)

// defaultPorts is the size of Linux's default ephemeral range, 32768 to 60999, for
// when the system does not say.
const defaultPorts = 60999 - 32768 + 1

// sourceAddresses returns how many source addresses the client dials n sockets from.
// A connection from a chosen address takes a port of its own on that address from
// the ephemeral range (net.ipv4.ip_local_port_range, 28,232 ports by default), so one
// address cannot hold much more than 28,000 sockets; each gets at most half the range,
// leaving the rest to whatever else runs on the machine. It returns 0 (let the system
// choose, 127.0.0.1) where 127.0.0.x cannot be bound, and an error when n needs more
// addresses than 127.0.0.2 to 127.0.0.254.
func sourceAddresses(n int) (int, error) {
	ports, ok := portRange()
	if !ok {
		ports = defaultPorts
	}
	perAddr := max(1, ports/2)
	k := (n + perAddr - 1) / perAddr
	if !loopbackSources {
		if k > 1 {
			return 0, fmt.Errorf("%d sockets need %d source addresses of %d local ports each; this system binds 127.0.0.1 alone", n, k, perAddr)
		}
		return 0, nil
	}
	if k > maxSources {
		what := "the ephemeral range has " + strconv.Itoa(ports) + " ports"
		if !ok {
			what = "assuming the ephemeral range has " + strconv.Itoa(ports) + " ports"
		}
		return 0, fmt.Errorf("%d sockets need %d source addresses (%s, half of them used per address); at most %d: widen net.ipv4.ip_local_port_range", n, k, what, maxSources)
	}
	return max(1, k), nil
}

// sourcesText says where the client dials from.
func sourcesText(k int) string {
	switch k {
	case 0:
		return "the address the system picks"
	case 1:
		return sourceAddr(0).String()
	}
	return fmt.Sprintf("%d source addresses, %s to %s", k, sourceAddr(0), sourceAddr(k-1))
}
