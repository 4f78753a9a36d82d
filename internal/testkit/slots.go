// This file keeps the tests to Redis Cluster's rule on every Redis they
// use: the keys of one command, one script or one MULTI transaction are
// of one hash slot, and a script is told the keys it touches (KEYS).
// Standalone Redis and miniredis accept anything; a Cluster answers
// CROSSSLOT, or runs a script that names no key on a random node. The
// clients of MiniRedis, RealRedis and the Cluster helpers check every
// call they send, so the whole test suite holds the code to the rule.

package testkit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Slots is the number of Redis Cluster hash slots.
const Slots = 16384

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag, the part between the first '{' and the first '}' after it when
// that part is not empty, or else of the whole key; modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % Slots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum
// Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// SlotViolation says why args (one command, as go-redis sends it) could
// not run on Redis Cluster; "" when it could.
func SlotViolation(args []any) string {
	if len(args) == 0 {
		return ""
	}
	name := strings.ToLower(fmt.Sprint(args[0]))
	keys, script := commandKeys(name, args)
	if script && len(keys) == 0 {
		return fmt.Sprintf("%s with no KEYS: on Redis Cluster it runs on a random node; pass every key the script touches in KEYS", name)
	}
	return crossSlot(name, keys)
}

// crossSlot names the keys of more than one slot, if any.
func crossSlot(what string, keys []string) string {
	for _, k := range keys[min(1, len(keys)):] {
		if Slot(k) != Slot(keys[0]) {
			return fmt.Sprintf("%s touches keys of more than one hash slot (CROSSSLOT on Redis Cluster): %q is in slot %d, %q in slot %d; give keys used together one hash tag",
				what, keys[0], Slot(keys[0]), k, Slot(k))
		}
	}
	return ""
}

// commandKeys returns the keys of a command that may have more than one,
// and whether it is a script (or function) call. Any other command has at
// most one key: nothing to check.
func commandKeys(name string, args []any) (keys []string, script bool) {
	str := func(from, to int) []string {
		var out []string
		for i := from; i < to && i < len(args); i++ {
			out = append(out, fmt.Sprint(args[i]))
		}
		return out
	}
	// numKeys reads the key count at args[at] and returns the keys after it.
	numKeys := func(at int) []string {
		if at >= len(args) {
			return nil
		}
		n, err := strconv.Atoi(fmt.Sprint(args[at]))
		if err != nil {
			return nil
		}
		return str(at+1, at+1+n)
	}
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return numKeys(2), true
	case "del", "exists", "unlink", "touch", "mget", "watch", "sinter", "sinterstore", "sunion",
		"sunionstore", "sdiff", "sdiffstore", "pfcount", "pfmerge":
		return str(1, len(args)), false
	case "rename", "renamenx", "copy", "smove", "lmove", "blmove", "rpoplpush", "brpoplpush", "lcs",
		"zrangestore", "geosearchstore":
		return str(1, 3), false
	case "mset", "msetnx":
		for i := 1; i < len(args); i += 2 {
			keys = append(keys, fmt.Sprint(args[i]))
		}
		return keys, false
	case "blpop", "brpop", "bzpopmin", "bzpopmax": // keys..., timeout
		return str(1, len(args)-1), false
	case "sintercard", "zunion", "zinter", "zdiff", "zintercard", "lmpop", "zmpop":
		return numKeys(1), false
	case "blmpop", "bzmpop": // timeout numkeys keys...
		return numKeys(2), false
	case "zunionstore", "zinterstore", "zdiffstore": // destination numkeys keys...
		return append(str(1, 2), numKeys(2)...), false
	case "bitop": // operation destination keys...
		return str(2, len(args)), false
	case "xread", "xreadgroup": // ... STREAMS key... id...
		for i := 1; i < len(args); i++ {
			if strings.EqualFold(fmt.Sprint(args[i]), "streams") {
				rest := len(args) - i - 1
				return str(i+1, i+1+rest/2), false
			}
		}
	}
	return nil, false
}

// txViolation checks a MULTI ... EXEC pipeline: every key of every
// command in it must be of one slot.
func txViolation(cmds []redis.Cmder) string {
	var keys []string
	for _, c := range cmds {
		args := c.Args()
		name := strings.ToLower(c.Name())
		if name == "multi" || name == "exec" {
			continue
		}
		if v := SlotViolation(args); v != "" {
			return v
		}
		ks, _ := commandKeys(name, args)
		if ks == nil && len(args) > 1 && !keyless[name] {
			ks = []string{fmt.Sprint(args[1])}
		}
		keys = append(keys, ks...)
	}
	return crossSlot("a MULTI transaction", keys)
}

// keyless are commands without keys that may be queued in a transaction
// (the rest have their key first, or are listed in commandKeys).
var keyless = map[string]bool{
	"ping": true, "echo": true, "publish": true, "spublish": true, "time": true, "dbsize": true,
	"info": true, "wait": true, "select": true, "flushall": true, "flushdb": true, "script": true,
	"config": true, "client": true, "debug": true, "function": true, "command": true, "lastsave": true,
}

// slotHook reports every call that breaks the Cluster rule.
type slotHook struct{ report func(string) }

func (h slotHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h slotHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if v := SlotViolation(cmd.Args()); v != "" {
			h.report(v)
		}
		return next(ctx, cmd)
	}
}

func (h slotHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "multi") {
			if v := txViolation(cmds); v != "" {
				h.report(v)
			}
		} else {
			// A plain pipeline may span slots: a Cluster client splits it
			// by node. Each command must keep the rule.
			for _, c := range cmds {
				if v := SlotViolation(c.Args()); v != "" {
					h.report(v)
				}
			}
		}
		return next(ctx, cmds)
	}
}

// NewSlotCheck is a go-redis hook that calls report for every call that
// could not run on Redis Cluster (SlotViolation; a MULTI transaction over
// more than one slot).
func NewSlotCheck(report func(violation string)) redis.Hook { return slotHook{report: report} }

// checkSlots adds the slot check to c, failing t on a violation. Calls
// made after the test ended (by goroutines still draining) are not
// reported: a test may no longer be failed then.
func checkSlots(t testing.TB, c interface{ AddHook(redis.Hook) }) {
	var mu sync.Mutex
	ended := false
	t.Cleanup(func() { mu.Lock(); ended = true; mu.Unlock() })
	c.AddHook(NewSlotCheck(func(v string) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Errorf("Redis Cluster rule broken: %s", v)
		}
	}))
}
