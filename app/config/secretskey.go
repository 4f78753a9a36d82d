package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
)

// SecretsKeySize is the length of the key of secrets_key_file: AES-256
// (docs/decisions/0020-bmc-passwords-encrypted-at-rest.md).
const SecretsKeySize = 32

// SecretsKey reads the key of secrets_key_file: 32 bytes written as 64 hex
// digits or as standard base64 (with or without padding), one line. Raw
// binary is not accepted: a text file can be checked, copied to every
// replica and put in a Kubernetes secret without surprises.
func (c *Config) SecretsKey() ([]byte, error) {
	if c.SecretsKeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.SecretsKeyFile)
	if err != nil {
		return nil, err
	}
	return ParseSecretsKey(b)
}

// ParseSecretsKey decodes a key file's contents (SecretsKey).
func ParseSecretsKey(b []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return nil, fmt.Errorf("the key file is empty (want %d bytes as 64 hex digits or base64; `fishgate demo` or `openssl rand -hex 32` makes one)", SecretsKeySize)
	}
	if k, err := hex.DecodeString(s); err == nil {
		if len(k) != SecretsKeySize {
			return nil, fmt.Errorf("the key is %d bytes of hex, want %d (64 hex digits)", len(k), SecretsKeySize)
		}
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != SecretsKeySize {
				return nil, fmt.Errorf("the key is %d bytes of base64, want %d", len(k), SecretsKeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("the key is neither 64 hex digits nor base64 of %d bytes", SecretsKeySize)
}

// WriteSecretsKey makes a new random key and writes it to path as hex,
// readable by its owner only; an existing file is kept (a key in use must
// not change, or the stored passwords cannot be read).
func WriteSecretsKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k := make([]byte, SecretsKeySize)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600)
}
