package redispool

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// slotCases are keys with the slot Redis gives them. The numbers without a
// comment are the ones published in the Redis Cluster documentation and
// elsewhere; TestSlotMatchesServer checks every one against a real
// server's CLUSTER KEYSLOT.
var slotCases = []struct {
	key  string
	slot int
}{
	{"", 0},
	{"foo", 12182},
	{"bar", 5061},
	{"hello", 866},
	{"123456789", 0x31C3}, // CRC16/XMODEM's check value, below 16384
	{"user1000", 3443},
	{"{user1000}.following", 3443},
	{"{user1000}.followers", 3443},
	{"foo{user1000}bar", 3443},
	{"{user1000}}", 3443},        // the first '}' after the '{' ends the tag
	{"x{user1000}{other}", 3443}, // only the first tag counts
	{"{}user1000", 7326},         // empty tag: the whole key is hashed
	{"foo{}{bar}", 8363},         // empty first tag: whole key, not "bar"
	{"foo{{bar}}zap", 4015},      // the tag is "{bar"
	{"{bar", 4015},               // no '}': whole key
	{"bar}", 6624},               // no '{': whole key
	{"}{bar}", 5061},             // a '}' before the '{' does not count
	{"\x00\xff{\x80}", 4488},     // binary keys and tags
}

func TestSlotKnownValues(t *testing.T) {
	for _, tc := range slotCases {
		if got := Slot(tc.key); got != tc.slot {
			t.Errorf("Slot(%q): got %d; want %d", tc.key, got, tc.slot)
		}
		if got := slotBytes([]byte(tc.key)); got != tc.slot {
			t.Errorf("slotBytes([]byte(%q)): got %d; want %d", tc.key, got, tc.slot)
		}
	}
}

func TestCRC16CheckValue(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(\"123456789\"): got %#04x; want 0x31c3", got)
	}
	for i, v := range crc16Table {
		if want := crc16Bitwise([]byte{byte(i)}); v != want {
			t.Errorf("crc16Table[%d]: got %#04x; want %#04x", i, v, want)
		}
	}
}

// crc16Bitwise is CRC-16/XMODEM computed bit by bit, without the table: the
// reference the table and crc16 are checked against.
func crc16Bitwise(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
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

// startClusterNode starts one redis-server in cluster mode, owning no
// slots: enough to answer CLUSTER KEYSLOT and COMMAND GETKEYS.
func startClusterNode(t *testing.T) *redistest.Server {
	t.Helper()
	return redistest.StartServer(t, "--cluster-enabled", "yes",
		"--cluster-port", strconv.Itoa(redistest.FreeLowPort(t)))
}

// TestSlotMatchesServer checks Slot against CLUSTER KEYSLOT for the known
// cases, for random keys with and without hash tags, and for keys given as
// numbers, which redigo sends in decimal.
func TestSlotMatchesServer(t *testing.T) {
	t.Parallel()
	srv := startClusterNode(t)
	keyslot := func(key string) int {
		t.Helper()
		n, ok := srv.Do(t, "CLUSTER", "KEYSLOT", key).(int64)
		if !ok {
			t.Fatalf("CLUSTER KEYSLOT %q: not an integer", key)
		}
		return int(n)
	}

	keys := []string{}
	for _, tc := range slotCases {
		keys = append(keys, tc.key)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab{}\x00\xffz09-:"
	for range 300 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		keys = append(keys, string(b))
	}
	for _, key := range keys {
		if got, want := Slot(key), keyslot(key); got != want {
			t.Errorf("Slot(%q): got %d; CLUSTER KEYSLOT says %d", key, got, want)
		}
	}

	// Arguments of other types hash as redigo formats them.
	args := []any{42, int64(-7), uint8(200), int32(1 << 20), uint64(1 << 63), 1.5, 1e21,
		float32(0.1), true, false, nil, []byte("{user1000}x"), stringArg("k")}
	for _, arg := range args {
		text := argString(arg)
		if got, want := argSlot(arg), keyslot(text); got != want {
			t.Errorf("argSlot(%T %v): got %d; CLUSTER KEYSLOT %q says %d", arg, arg, got, text, want)
		}
	}
}

// stringArg is a redis.Argument, as a user's key type might be.
type stringArg string

func (s stringArg) RedisArg() any { return "arg:" + string(s) }

func TestArgStringFormatsAsRedigo(t *testing.T) {
	tests := []struct {
		arg  any
		want string
	}{
		{"k", "k"},
		{[]byte("k"), "k"},
		{42, "42"},
		{int64(-7), "-7"},
		{uint8(200), "200"},
		{uint64(1 << 63), "9223372036854775808"},
		{1.5, "1.5"},
		{1e21, "1e+21"},
		{float32(0.1), "0.1"},
		{true, "1"},
		{false, "0"},
		{nil, ""},
		{stringArg("k"), "arg:k"},
	}
	for _, tc := range tests {
		if got := argString(tc.arg); got != tc.want {
			t.Errorf("argString(%T %v): got %q; want %q", tc.arg, tc.arg, got, tc.want)
		}
		if got, want := argSlot(tc.arg), Slot(tc.want); got != want {
			t.Errorf("argSlot(%T %v): got %d; want Slot(%q) = %d", tc.arg, tc.arg, got, tc.want, want)
		}
	}
}

func TestSlotDoesNotAllocate(t *testing.T) {
	key := "{user1000}.following"
	// Boxed once here, as they are in a command's []any.
	bkey, ikey, fkey := any([]byte(key)), any(123456), any(3.25)
	var sink int
	for name, f := range map[string]func(){
		"Slot":          func() { sink += Slot(key) },
		"argSlot/bytes": func() { sink += argSlot(bkey) },
		"argSlot/int":   func() { sink += argSlot(ikey) },
		"argSlot/float": func() { sink += argSlot(fkey) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: got %v allocations; want 0", name, n)
		}
	}
	_ = sink
}

// FuzzSlot checks Slot's properties: a slot in range; the same slot for
// the key as a string and as bytes; agreement with the bit-by-bit CRC for
// a key without a tag; and, for a key wrapped in a tag, the slot of the
// key's bytes whatever follows the tag.
//
//	go test -run '^$' -fuzz '^FuzzSlot$' -fuzztime 30s .
func FuzzSlot(f *testing.F) {
	for _, tc := range slotCases {
		f.Add(tc.key, "suffix")
	}
	f.Fuzz(func(t *testing.T, key, suffix string) {
		got := Slot(key)
		if got < 0 || got >= slotCount {
			t.Fatalf("Slot(%q): got %d; want 0 <= slot < %d", key, got, slotCount)
		}
		if b := slotBytes([]byte(key)); b != got {
			t.Fatalf("Slot(%q) = %d but slotBytes = %d", key, got, b)
		}
		start := strings.IndexByte(key, '{')
		end := -1
		if start >= 0 {
			end = strings.IndexByte(key[start+1:], '}')
		}
		if end <= 0 { // no tag, or an empty one: the whole key
			if want := int(crc16Bitwise([]byte(key)) % slotCount); got != want {
				t.Fatalf("Slot(%q): got %d; want CRC16 %% 16384 = %d", key, got, want)
			}
		}
		if key != "" && !strings.Contains(key, "}") {
			tagged := "{" + key + "}" + suffix
			if got, want := Slot(tagged), int(crc16Bitwise([]byte(key))%slotCount); got != want {
				t.Fatalf("Slot(%q): got %d; want the slot of the tag %q, %d", tagged, got, key, want)
			}
		}
	})
}

func BenchmarkSlot(b *testing.B) {
	for _, bc := range []struct{ name, key string }{
		{"Key=short", "foo"},
		{"Key=17B", "user:1000:profile"},
		{"Key=tagged", "{user1000}.following"},
		{"Key=64B", strings.Repeat("k", 64)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int
			for range b.N {
				sink += Slot(bc.key)
			}
			_ = sink
		})
	}
}
