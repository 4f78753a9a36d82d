package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRedacted: with every secret set, the printed configuration shows
// none of them and still shows the rest; the configuration itself is
// left as it was.
func TestRedacted(t *testing.T) {
	const nodes = `
nodes:
  - {id: n1, backend: redfish, address: "https://root:addr-s3cret@10.0.0.5", user: root, password: bmc-s3cret,
     ipmi_listen: "127.0.0.1:0", ipmi_user: ironic, ipmi_password: ipmi-s3cret}
`
	for _, c := range []struct {
		name, yaml string
		secrets    []string
		shown      []string
	}{
		{"redis block", "accounts: [{user: admin, password: acct-s3cret}]\n" +
			"redis: {mode: sentinel, addrs: ['10.0.0.1:26379'], master_name: fg, username: fguser, password: redis-s3cret, sentinel_password: sent-s3cret}\n" + nodes,
			[]string{"acct-s3cret", "redis-s3cret", "sent-s3cret", "bmc-s3cret", "ipmi-s3cret", "addr-s3cret"},
			[]string{"user: admin", "fguser", "10.0.0.1:26379", "master_name: fg", "user: root", "ipmi_user: ironic", "root:xxxxx@10.0.0.5", "password: <hidden>"}},
		{"redis_url", "accounts: [{user: admin, password: acct-s3cret}]\nredis_url: redis://fguser:url-s3cret@redis.lab:6380/2\n" + nodes,
			[]string{"acct-s3cret", "url-s3cret", "bmc-s3cret", "ipmi-s3cret", "addr-s3cret"},
			[]string{"redis_url: redis://fguser:xxxxx@redis.lab:6380/2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			b, err := yaml.Marshal(cfg.Redacted())
			if err != nil {
				t.Fatal(err)
			}
			out := string(b)
			for _, s := range c.secrets {
				if strings.Contains(out, s) {
					t.Errorf("printed configuration shows %q:\n%s", s, out)
				}
			}
			for _, s := range c.shown {
				if !strings.Contains(out, s) {
					t.Errorf("printed configuration lacks %q:\n%s", s, out)
				}
			}
			if cfg.Accounts[0].Password != "acct-s3cret" || cfg.Nodes[0].Password != "bmc-s3cret" {
				t.Error("Redacted changed the configuration it copied")
			}
		})
	}
}
