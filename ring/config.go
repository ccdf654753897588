package ring

// Default values of Config.
const (
	// DefaultPartitions is the default Config.Partitions: a prime well above
	// any expected member count, so that each member owns many partitions and
	// load evens out.
	DefaultPartitions = 4099
	// DefaultLoad is the default Config.Load.
	DefaultLoad = 1.25
)

// virtualNodes is how many points each member has on the hash circle that
// partitions are assigned from. It is not configurable: changing it changes
// every placement, and every member must agree on it.
var virtualNodes = 1000

// Config controls blob placement. Every member of a cluster must use the same
// Config, or they will disagree about where blobs live.
type Config struct {
	// Partitions is the number of partitions digests are hashed into; a
	// partition is the unit of ownership. Default 4099. New raises it to the
	// member count if there are more members than partitions.
	Partitions int `yaml:"partitions"`

	// Load is the bounded-load factor: no member owns more than
	// ceil(Load * floor(Partitions/members)) partitions. Default 1.25. Values
	// too small to place every partition are raised to the smallest that fits.
	Load float64 `yaml:"load"`
}

// applyDefaults fills zero or out-of-range fields with their defaults.
func (c *Config) applyDefaults() {
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Load <= 0 {
		c.Load = DefaultLoad
	}
}
