package ring

// Default and limit values of Config.
const (
	// DefaultPartitions is the default Config.Partitions.
	DefaultPartitions = 32771
	// MaxPartitions is the largest Config.Partitions honoured.
	MaxPartitions = 1 << 20
	// DefaultLoad is the default Config.Load.
	DefaultLoad = 1.25
)

// virtualNodes is how many points each member has on the hash circle that
// partitions are assigned from (the library's ReplicationFactor). A member's
// share of the circle varies by about 1/sqrt(virtualNodes) (3% here), and
// that variation is what makes a new member take more than its 1/(N+1) of
// the blobs. It is not configurable: every member must agree on it, and
// changing it moves almost every blob.
const virtualNodes = 1000

// Config controls blob placement. Every member of a cluster must use the same
// Config, or members will disagree about where blobs live.
type Config struct {
	// Partitions is the number of partitions digests are hashed into; a
	// partition is the unit of ownership. Default 32771 (prime), at most
	// MaxPartitions. A member's share of partitions varies by about
	// sqrt(members/Partitions), so keep it far above the member count; New
	// raises it to the member count if there are more members than that.
	Partitions int `yaml:"partitions"`

	// Load is the bounded-load factor: no member owns more than
	// ceil(Load * floor(Partitions/members)) partitions. Default 1.25. New
	// raises values too small to place every partition to the smallest that
	// fits.
	Load float64 `yaml:"load"`
}

// applyDefaults fills zero or out-of-range fields.
func (c *Config) applyDefaults() {
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	c.Partitions = min(c.Partitions, MaxPartitions)
	if !(c.Load > 0) { // also NaN
		c.Load = DefaultLoad
	}
}
