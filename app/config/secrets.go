package config

import "net/url"

// Hidden replaces a secret in Redacted's copy.
const Hidden = "<hidden>"

// Redacted is c with every secret hidden, for printing (`fishgate
// config`): the passwords of accounts, BMCs, IPMI fronts and Redis, and
// the password inside a URL (redis_url, a BMC address). Where a secret is
// unset it stays empty, which shows that it is. Files that hold secrets
// are named, not read.
func (c Config) Redacted() Config {
	hide := func(s *string) {
		if *s != "" {
			*s = Hidden
		}
	}
	c.RedisURL = hideURLPassword(c.RedisURL)
	hide(&c.Redis.Password)
	hide(&c.Redis.SentinelPassword)
	c.Redis.filePassword = ""
	c.Accounts = append([]Account(nil), c.Accounts...)
	for i := range c.Accounts {
		hide(&c.Accounts[i].Password)
	}
	c.Nodes = append([]Node(nil), c.Nodes...)
	for i := range c.Nodes {
		n := &c.Nodes[i]
		hide(&n.Password)
		hide(&n.IPMIPassword)
		n.Address = hideURLPassword(n.Address)
	}
	return c
}

// hideURLPassword hides the password of a URL's user information and
// keeps the rest; anything else is returned as it is.
func hideURLPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}
