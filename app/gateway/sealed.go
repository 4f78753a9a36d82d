package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealer encrypts the BMC passwords of runtime sources before they go to
// Redis: AES-256-GCM with the key of secrets_key_file, a random nonce per
// value, and the source id and field as additional data, so that a sealed
// value copied into another record or field does not open
// (docs/decisions/0020-bmc-passwords-encrypted-at-rest.md).
type sealer struct{ aead cipher.AEAD }

// sealedPrefix names the format (and its version) of a sealed value.
const sealedPrefix = "aes256gcm:v1:"

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func sealedAD(id, field string) []byte { return []byte("fishgate source " + id + " " + field) }

// seal encrypts plain for source id's field; "" stays "".
func (s *sealer) seal(id, field, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), sealedAD(id, field))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// errUnsealed is a stored value that does not open: another key, or a
// value that was changed or moved.
var errUnsealed = errors.New("the stored password does not decrypt with this gateway's secrets key (every replica needs the same secrets_key_file)")

// open decrypts a value sealed for source id's field.
func (s *sealer) open(id, field, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("source %s: %s: not a sealed value", id, field)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("source %s: %s: malformed sealed value", id, field)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], sealedAD(id, field))
	if err != nil {
		return "", fmt.Errorf("source %s: %s: %w", id, field, errUnsealed)
	}
	return string(plain), nil
}
