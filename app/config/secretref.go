package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Secrets need not be written in the file. Each secret field takes
//
//   - an environment variable: the whole value "${NAME}" is replaced by
//     $NAME when the file is loaded (a variable that is unset or empty is an
//     error naming the field). Only secret fields are expanded, and only a
//     value that starts with "${": any other "$" is literal, so bcrypt
//     hashes ($2a$10$...) need no escaping. A literal secret that starts
//     with "${" is written with "$${" ("$${x}" is the password "${x}").
//   - a file, in the field of the same name with _file (password_file,
//     ipmi_password_file, sentinel_password_file): its content, trailing
//     newlines dropped; missing, unreadable or empty is an error
//     naming the field. Giving both the secret and its file is an error.
//
// Both are read again at every load (a reload picks up a rotated secret).
// `fishgate config` names the files and hides the secrets.

// secretSlot is one secret field of a configuration.
type secretSlot struct {
	field string  // its path: nodes[2].password
	value *string // the secret
	file  *string // its _file field; nil where the secret has none here
}

// secretSlots are c's secret fields. redis.password_file is read by
// validateRedis (it keeps the file's password apart, for RedisOptions).
func (c *Config) secretSlots() []secretSlot {
	slots := []secretSlot{
		{field: "redis_url", value: &c.RedisURL},
		{field: "redis.password", value: &c.Redis.Password},
		{field: "redis.sentinel_password", value: &c.Redis.SentinelPassword, file: &c.Redis.SentinelPasswordFile},
	}
	for i := range c.Accounts {
		a := &c.Accounts[i]
		slots = append(slots, secretSlot{fmt.Sprintf("accounts[%d].password", i), &a.Password, &a.PasswordFile})
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		slots = append(slots,
			secretSlot{fmt.Sprintf("nodes[%d].password", i), &n.Password, &n.PasswordFile},
			secretSlot{fmt.Sprintf("nodes[%d].ipmi_password", i), &n.IPMIPassword, &n.IPMIPasswordFile})
	}
	return slots
}

// resolveSecrets replaces every secret reference of c by the secret, from
// the environment (lookup) or a file.
func (c *Config) resolveSecrets(lookup func(string) (string, bool), bad func(field, format string, a ...any)) {
	for _, s := range c.secretSlots() {
		if s.file != nil && *s.file != "" {
			if *s.value != "" {
				bad(s.field, "give %s or %s_file, not both", lastKey(s.field), lastKey(s.field))
				continue
			}
			v, err := readSecretFile(*s.file)
			if err != nil {
				bad(s.field+"_file", "%v", err)
				continue
			}
			*s.value = v
			continue
		}
		v, err := expandSecret(*s.value, lookup)
		if err != nil {
			bad(s.field, "%v", err)
			continue
		}
		*s.value = v
	}
}

func lastKey(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

// envRefRe is a reference as a whole value: ${NAME}.
var envRefRe = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// expandSecret resolves one secret as written (see above).
func expandSecret(s string, lookup func(string) (string, bool)) (string, error) {
	if rest, ok := strings.CutPrefix(s, "$${"); ok {
		return "${" + rest, nil
	}
	if !strings.HasPrefix(s, "${") {
		return s, nil
	}
	m := envRefRe.FindStringSubmatch(s)
	if m == nil {
		// The value is not shown: it may be a secret itself.
		return "", fmt.Errorf(`starts with "${" but is not a reference ${NAME} to an environment variable (letters, digits, _); write "$${" for a literal "${"`)
	}
	switch v, ok := lookup(m[1]); {
	case !ok:
		return "", fmt.Errorf("environment variable %s is not set", m[1])
	case v == "":
		return "", fmt.Errorf("environment variable %s is empty", m[1])
	default:
		return v, nil
	}
}

// readSecretFile reads a secret from a file: its content without
// trailing newlines; an empty secret is an error.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
