package main

import "github.com/fishgate/fishgate/internal/redisproc"

// gatewayRedis is the Redis part of the gateway's configuration:
// redis_url for a standalone server, the redis block otherwise (with
// min_replicas_ack: 1, so that no accepted request is lost in a failover).
func gatewayRedis(t *redisproc.Topology) (url string, block *redisBlock) {
	switch t.Mode() {
	case "sentinel":
		return "", &redisBlock{Mode: "sentinel", Addrs: t.SentinelAddrs(), MasterName: redisproc.MasterName, MinReplicasAck: 1}
	case "cluster":
		return "", &redisBlock{Mode: "cluster", Addrs: t.Addrs(), MinReplicasAck: 1}
	}
	return "redis://" + t.Addrs()[0] + "/0", nil
}

// redisBlock is the config's redis section, as far as the check sets it.
type redisBlock struct {
	Mode           string   `yaml:"mode"`
	Addrs          []string `yaml:"addrs"`
	MasterName     string   `yaml:"master_name,omitempty"`
	MinReplicasAck int      `yaml:"min_replicas_ack"`
}
