package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/atollhq/atoll/node"
)

// clusterFlags are serve's cluster settings; each overrides its ATOLL_*
// variable and the cluster: key of the config file.
type clusterFlags struct {
	nodeName, gossip, grpc, advertise, join, routing, secret string
	replicas                                                 int
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nodeName, "node-name", "", "member name, unique in the cluster (ATOLL_NODE_NAME; default host name)")
	fs.StringVar(&c.gossip, "gossip-addr", "", "gossip bind address; setting it enables clustering (ATOLL_GOSSIP_ADDR; default 0.0.0.0:7946)")
	fs.StringVar(&c.grpc, "grpc-addr", "", "gRPC bind address (ATOLL_GRPC_ADDR; default 0.0.0.0:7947)")
	fs.StringVar(&c.advertise, "advertise-addr", "", "host or IP other members reach this one at (ATOLL_ADVERTISE_ADDR)")
	fs.StringVar(&c.join, "join", "", "comma list of members to join, host:port or DNS names (ATOLL_JOIN)")
	fs.IntVar(&c.replicas, "replicas", 0, "members holding each blob (ATOLL_REPLICAS; default 2)")
	fs.StringVar(&c.routing, "routing", "", "proxy or redirect, for blobs held elsewhere (ATOLL_ROUTING; default proxy)")
	fs.StringVar(&c.secret, "cluster-secret", "", "shared secret: encrypts gossip, authenticates members (ATOLL_CLUSTER_SECRET)")
}

func (c *clusterFlags) apply(cc *node.ClusterConfig) error {
	setIf(&cc.NodeName, c.nodeName)
	setIf(&cc.GossipAddr, c.gossip)
	setIf(&cc.GRPCAddr, c.grpc)
	setIf(&cc.AdvertiseAddr, c.advertise)
	setIf(&cc.Routing, c.routing)
	setIf(&cc.Secret, c.secret)
	if c.join != "" {
		cc.Join = splitList(c.join)
	}
	if c.replicas < 0 {
		return fmt.Errorf("--replicas %d: must be positive", c.replicas)
	}
	if c.replicas > 0 {
		cc.Placement.Replicas = c.replicas
	}
	return nil
}

// status prints a member's view of the cluster as a table.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:5000", "URL of any member")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	var af adminFlags
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := baseURL(*addr)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := af.call(ctx, http.MethodGet, base, "/_atoll/v1/cluster", stderr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = stdout.Write(body)
		return err
	}
	var s node.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	fmt.Fprintf(stdout, "node %s, replicas %d, routing %s\n\n", s.Node, s.Replicas, s.Routing)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tHTTP\tGRPC\tBLOBS\tBYTES")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.Name, m.State, m.HTTP, m.GRPC, m.Blobs, humanBytes(m.Bytes))
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
