package redact

import "testing"

func TestText(t *testing.T) {
	cases := []struct{ in, want string }{
		{`Get "https://10.0.0.17/redfish/v1/Systems/1": dial tcp 10.0.0.17:443: connect: connection refused`,
			`Get "<url>": dial tcp <address>: connect: connection refused`},
		{`session store unavailable: dial tcp 127.0.0.1:6379: connect: connection refused`,
			`session store unavailable: dial tcp <address>: connect: connection refused`},
		{`dial tcp: lookup redis.internal on 127.0.0.53:53: no such host`, `dial tcp: lookup <address> on <address>: no such host`},
		{`dial tcp [fe80::1%eth0]:623: i/o timeout`, `dial tcp <address>: i/o timeout`},
		{`write udp ::1 -> 2001:db8::17: refused`, `write udp <address> -> <address>: refused`},
		{`redis: redis://:s3cret@redis:6379/0 unusable`, `redis: <url> unusable`},
		{`dial unix /run/redis.sock: connect: no such file or directory`, `dial unix <address>: connect: no such file or directory`},
		{`bmc.lab.example:443 refused the login of root with password=calvin`, `<address> refused the login of root with password=<hidden>`},
		{`node n1: the gateway has not been able to read its BMC yet (connection refused), so it cannot take Reset; retry in 10 s`,
			`node n1: the gateway has not been able to read its BMC yet (connection refused), so it cannot take Reset; retry in 10 s`},
		{`The service is temporarily unavailable.  Retry in 5 seconds.`, `The service is temporarily unavailable.  Retry in 5 seconds.`},
	}
	for _, c := range cases {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
