package peer

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// advertiseIP chooses the IP other members reach this one at, in the order
// Config.AdvertiseAddr documents. bind is the gossip bind IP and port the
// gossip port (for resolving join names).
func advertiseIP(ctx context.Context, cfg *Config, bind net.IP, port int) (net.IP, error) {
	if a := cfg.AdvertiseAddr; a != "" {
		if ip := net.ParseIP(strings.Trim(a, "[]")); ip != nil {
			return ip, nil
		}
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip", a)
		if err != nil {
			return nil, fmt.Errorf("peer: advertise address %q: %w", a, err)
		}
		return preferIPv4(ips), nil
	}
	if !bind.IsUnspecified() {
		return bind, nil
	}
	for _, entry := range cfg.Join {
		addrs, err := resolveJoin(ctx, entry, port)
		if err != nil || len(addrs) == 0 {
			continue
		}
		host, _, _ := net.SplitHostPort(addrs[0])
		if ip := routeTo(net.ParseIP(host)); ip != nil {
			return ip, nil
		}
		break
	}
	return interfaceIP(), nil
}

// routeTo returns the local IP the kernel would send from to reach ip, or
// nil. Nothing is sent: connecting a UDP socket only picks a route.
func routeTo(ip net.IP) net.IP {
	if ip == nil {
		return nil
	}
	conn, err := net.Dial("udp", net.JoinHostPort(ip.String(), "9"))
	if err != nil {
		return nil
	}
	defer conn.Close()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP
	}
	return nil
}

// interfaceIP returns the first private IPv4 address of an up interface,
// else the first other non-loopback one, else 127.0.0.1.
func interfaceIP() net.IP {
	var other net.IP
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := n.IP.To4()
			if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			if ip.IsPrivate() {
				return ip
			}
			if other == nil {
				other = ip
			}
		}
	}
	if other != nil {
		return other
	}
	return net.IPv4(127, 0, 0, 1)
}

func preferIPv4(ips []net.IP) net.IP {
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip
		}
	}
	return ips[0] // LookupIP never returns an empty list without an error
}

// resolveJoin turns one Config.Join entry into the "IP:port" addresses it
// names: every address a DNS name resolves to, with defaultPort when the
// entry has none.
func resolveJoin(ctx context.Context, entry string, defaultPort int) ([]string, error) {
	host, port := entry, strconv.Itoa(defaultPort)
	if h, p, err := net.SplitHostPort(entry); err == nil {
		host, port = h, p
	} else {
		host = strings.Trim(entry, "[]") // a bare IPv6 address
	}
	if host == "" {
		return nil, fmt.Errorf("join address %q: no host", entry)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("join address %q: bad port", entry)
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("join address %q: %w", entry, err)
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip.IP.String(), port))
	}
	return addrs, nil
}
