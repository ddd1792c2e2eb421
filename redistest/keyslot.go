package redistest

import (
	"strconv"
	"strings"
	"sync"
)

// KeySlot returns the Redis Cluster hash slot of key (CRC16/XMODEM modulo
// 16384, hash tags honoured). It is a copy of redispool.Slot, which this
// package cannot import; the tests of each check it against the server's
// CLUSTER KEYSLOT.
func KeySlot(key string) int {
	if start := strings.IndexByte(key, '{'); start >= 0 {
		if end := strings.IndexByte(key[start+1:], '}'); end > 0 {
			key = key[start+1 : start+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

var (
	slotKeysOnce sync.Once
	slotKeys     [16384]string
)

// KeyForSlot returns a short key without braces that hashes to slot, the
// same one every time. "{" + KeyForSlot(s) + "}" prefixes any number of
// keys of slot s: KeysInSlot does that.
func KeyForSlot(slot int) string {
	slotKeysOnce.Do(func() {
		left := len(slotKeys)
		for i := 0; left > 0; i++ {
			k := "s" + strconv.Itoa(i)
			if s := KeySlot(k); slotKeys[s] == "" {
				slotKeys[s] = k
				left--
			}
		}
	})
	return slotKeys[slot]
}

// KeysInSlot returns n distinct keys, "{tag}:0", "{tag}:1" ..., that all
// hash to slot.
func KeysInSlot(slot, n int) []string {
	tag := "{" + KeyForSlot(slot) + "}:"
	keys := make([]string, n)
	for i := range keys {
		keys[i] = tag + strconv.Itoa(i)
	}
	return keys
}
