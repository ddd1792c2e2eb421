package redispool

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// Slot returns the Redis Cluster hash slot of key: CRC16 of the key modulo
// 16384, as in the Redis Cluster specification. When the key contains a
// hash tag — a '{', a later '}', and at least one byte between the first
// '{' and the first '}' after it — only the bytes between them are hashed,
// so "{user1000}.following" and "{user1000}.followers" share a slot. A key
// such as "{}x" or "x{y" has no hash tag and is hashed whole.
//
// Slot does not allocate.
func Slot(key string) int {
	if start := strings.IndexByte(key, '{'); start >= 0 {
		if end := strings.IndexByte(key[start+1:], '}'); end > 0 {
			key = key[start+1 : start+1+end]
		}
	}
	return int(crc16(key) & (slotCount - 1))
}

// slotBytes is Slot for a key held as bytes, so that arguments given as
// []byte are hashed without a copy.
func slotBytes(key []byte) int {
	if start := bytes.IndexByte(key, '{'); start >= 0 {
		if end := bytes.IndexByte(key[start+1:], '}'); end > 0 {
			key = key[start+1 : start+1+end]
		}
	}
	return int(crc16(key) & (slotCount - 1))
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no
// reflection, no final XOR), the variant the Redis Cluster specification
// names; its check value, the CRC of "123456789", is 0x31C3.
func crc16[K string | []byte](s K) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// crc16Table holds the CRC of every byte value, for the byte-at-a-time
// algorithm in crc16. It is computed rather than written out: the eight
// lines below are easier to check than 256 constants.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// argSlot returns the slot of a command argument as redigo would send it:
// strings and byte slices as they are, integers in decimal, float64 in
// strconv's shortest 'g' form, booleans as "1" and "0", nil as "", a
// redis.Argument by what its RedisArg returns, and any other value as
// fmt.Sprint shows it. So the key 1000 given as an int lands where "1000"
// does.
//
// argSlot does not allocate for strings, byte slices, integers, float64,
// booleans and nil, nor for a redis.Argument whose RedisArg returns one of
// them without allocating; only the fmt.Sprint case does.
func argSlot(arg any) int {
	switch a := arg.(type) {
	case string: // the common cases first: no interface assertion
		return Slot(a)
	case []byte:
		return slotBytes(a)
	case redis.Argument:
		// redigo unwraps one level, then formats what it got.
		arg = a.RedisArg()
		switch a := arg.(type) {
		case string:
			return Slot(a)
		case []byte:
			return slotBytes(a)
		case redis.Argument:
			return Slot(fmt.Sprint(a))
		}
	}
	var buf [32]byte // room for any int64, uint64 or float64
	if b, ok := appendArg(buf[:0], arg); ok {
		return slotBytes(b)
	}
	return Slot(fmt.Sprint(arg))
}

// argString returns a command argument as redigo would send it; see
// argSlot. It allocates for anything but a string.
func argString(arg any) string {
	if a, ok := arg.(redis.Argument); ok {
		arg = a.RedisArg()
		if _, again := arg.(redis.Argument); again {
			return fmt.Sprint(arg)
		}
	}
	switch a := arg.(type) {
	case string:
		return a
	case []byte:
		return string(a)
	}
	var buf [32]byte
	if b, ok := appendArg(buf[:0], arg); ok {
		return string(b)
	}
	return fmt.Sprint(arg)
}

// appendArg appends the text redigo sends for a numeric, boolean or nil
// argument to b. It reports false for strings, byte slices and other
// types, which the caller handles.
func appendArg(b []byte, arg any) ([]byte, bool) {
	switch a := arg.(type) {
	case int:
		return strconv.AppendInt(b, int64(a), 10), true
	case int64:
		return strconv.AppendInt(b, a, 10), true
	case int32:
		return strconv.AppendInt(b, int64(a), 10), true
	case int16:
		return strconv.AppendInt(b, int64(a), 10), true
	case int8:
		return strconv.AppendInt(b, int64(a), 10), true
	case uint:
		return strconv.AppendUint(b, uint64(a), 10), true
	case uint64:
		return strconv.AppendUint(b, a, 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(a), 10), true
	case uint16:
		return strconv.AppendUint(b, uint64(a), 10), true
	case uint8:
		return strconv.AppendUint(b, uint64(a), 10), true
	case float64:
		return strconv.AppendFloat(b, a, 'g', -1, 64), true
	case bool:
		if a {
			return append(b, '1'), true
		}
		return append(b, '0'), true
	case nil:
		return b, true
	}
	return b, false
}
