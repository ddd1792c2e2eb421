package redispool

// The slot map: which node serves each hash slot, as CLUSTER SLOTS
// reported it (parseSlots) and MOVED replies since have patched it
// (patch). A slotTable is never changed once published, so routing
// (route, owner) reads it without a lock. Hashing a key to its slot is
// slot.go's business; loading the map, topology.go's.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// slotTable is the slot map: which node serves each slot. It is never
// changed once published; a reload or a MOVED publishes a new one, so
// routing reads it without a lock.
type slotTable struct {
	slots   [slotCount]uint16 // index into shards; 0: no owner
	shards  []shard           // shards[0] is unused
	masters []*clusterNode    // every master once, for keyless commands
	from    string            // the node that sent the CLUSTER SLOTS reply
}

type shard struct {
	master *clusterNode // nil when endpoint cannot be dialed
	// endpoint is host:port of the master as CLUSTER SLOTS gave it,
	// kept for the error of a master that cannot be dialed ("?:7001").
	endpoint string
	replicas []*clusterNode // with ReadFromReplicas, the dialable replicas
	// replicaAddrs are the dialable replicas CLUSTER SLOTS lists, for
	// ForEachNode, which creates their pools; badReplicas the others.
	replicaAddrs, badReplicas []string
}

// route returns the node for slot: its master, or with replica a
// replica chosen at random. Slot -1 picks the next master in turn.
func (t *slotTable) route(slot int, replica bool, next *atomic.Uint32) (*clusterNode, error) {
	if slot < 0 {
		if len(t.masters) == 0 {
			if bad := t.undialable(); len(bad) > 0 {
				return nil, bad[0]
			}
			return nil, fmt.Errorf("redispool: cluster: no master in the slot map from %s", t.from)
		}
		return t.masters[int(next.Add(1))%len(t.masters)], nil
	}
	i := t.slots[slot]
	if i == 0 {
		return nil, fmt.Errorf("redispool: cluster: slot %d has no owner in the slot map from %s: %w", slot, t.from, errSlotUnserved)
	}
	sh := &t.shards[i]
	if sh.master == nil {
		return nil, endpointError(fmt.Sprintf("slot %d", slot), "its master", sh.endpoint, t.from)
	}
	if replica && len(sh.replicas) > 0 {
		return sh.replicas[rand.IntN(len(sh.replicas))], nil
	}
	return sh.master, nil
}

// errSlotUnserved is wrapped by the error for a slot no master serves
// in the slot map. During a failover or a reshard a node's CLUSTER
// SLOTS can show such a gap for a moment, so the command path reloads
// the map and retries within RetryTimeout, as for CLUSTERDOWN.
var errSlotUnserved = errors.New("the cluster does not serve it")

// owner returns the master of slot, or nil.
func (t *slotTable) owner(slot int) *clusterNode {
	return t.shards[t.slots[slot]].master
}

// patch publishes a slot map in which n serves slot, as a MOVED reply
// said.
func (c *Cluster) patch(slot int, n *clusterNode) {
	for {
		old := c.table.Load()
		if old == nil || old.owner(slot) == n {
			return
		}
		t := &slotTable{slots: old.slots, from: old.from}
		i := slices.IndexFunc(old.shards, func(s shard) bool { return s.master == n })
		t.shards, t.masters = old.shards, old.masters
		if i < 0 {
			i = len(old.shards)
			t.shards = append(slices.Clip(old.shards), shard{master: n})
			t.masters = append(slices.Clip(old.masters), n)
		}
		t.slots[slot] = uint16(i)
		if c.table.CompareAndSwap(old, t) {
			return
		}
	}
}

// parseSlots builds a slot map from a CLUSTER SLOTS reply sent by from.
// A master whose address cannot be dialed ("?" for a host, port 0)
// still gets its shard, without a node, so that its slots fail with an
// error that says why rather than "no owner".
func (c *Cluster) parseSlots(reply any, from string) (*slotTable, error) {
	ranges, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s: unexpected reply %T", from, reply)
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s lists no slots: the cluster is not set up", from)
	}
	fromHost, _, _ := net.SplitHostPort(from)
	t := &slotTable{shards: make([]shard, 1), from: from}
	byMaster := make(map[string]int) // shard index by the master's endpoint
	malformed := fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s: malformed reply", from)
	for _, r := range ranges {
		e, ok := r.([]any)
		if !ok || len(e) < 3 {
			return nil, malformed
		}
		lo, err1 := redis.Int(e[0], nil)
		hi, err2 := redis.Int(e[1], nil)
		if err1 != nil || err2 != nil || lo < 0 || hi >= slotCount || lo > hi {
			return nil, malformed
		}
		addr, dialable, ok := slotNodeAddr(e[2], fromHost)
		if !ok {
			return nil, malformed
		}
		i, ok := byMaster[addr]
		if !ok {
			i = len(t.shards)
			byMaster[addr] = i
			sh := shard{endpoint: addr}
			if dialable {
				n, err := c.nodeFor(addr, roleListed)
				if err != nil {
					return nil, err
				}
				sh.master = n
				t.masters = append(t.masters, n)
			}
			t.shards = append(t.shards, sh)
		}
		sh := &t.shards[i]
		for _, re := range e[3:] {
			raddr, rdialable, ok := slotNodeAddr(re, fromHost)
			switch {
			case !ok || slices.Contains(sh.replicaAddrs, raddr) || slices.Contains(sh.badReplicas, raddr):
				continue
			case !rdialable:
				sh.badReplicas = append(sh.badReplicas, raddr)
				continue
			}
			sh.replicaAddrs = append(sh.replicaAddrs, raddr)
			if c.cfg.ReadFromReplicas {
				n, err := c.nodeFor(raddr, roleListed)
				if err != nil {
					return nil, err
				}
				sh.replicas = append(sh.replicas, n)
			}
		}
		for s := lo; s <= hi; s++ {
			t.slots[s] = uint16(i)
		}
	}
	return t, nil
}

// slotNodeAddr returns host:port of a node entry of CLUSTER SLOTS
// ([host, port, id, ...]), and whether it can be dialed: not when the
// host is "?" (cluster-preferred-endpoint-type hostname, and the node
// announces none) or the port is 0 (the node has none for this kind of
// connection). An empty or null host means, as the Redis documentation
// says, the host of the node that replied: a node that has never met
// another does not know its own address, and with
// cluster-preferred-endpoint-type unknown-endpoint the client is meant
// to use the address it asked. ok is false for a malformed entry.
func slotNodeAddr(entry any, fromHost string) (addr string, dialable, ok bool) {
	e, ok := entry.([]any)
	if !ok || len(e) < 2 {
		return "", false, false
	}
	port, err := redis.Int(e[1], nil)
	if err != nil {
		return "", false, false
	}
	var host string
	switch h := e[0].(type) {
	case nil:
	case []byte:
		host = string(h)
	case string:
		host = h
	default:
		return "", false, false
	}
	if host == "" {
		host = fromHost
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), host != "?" && port > 0 && port <= 65535, true
}

// endpointError is the error for slots whose master (what) CLUSTER
// SLOTS from gives at an endpoint that cannot be dialed.
func endpointError(slots, what, endpoint, from string) error {
	why := "not an address to dial"
	if host, port, _ := net.SplitHostPort(endpoint); host == "?" {
		why = "the node has no hostname while cluster-preferred-endpoint-type is hostname: " +
			"give every node one (cluster-announce-hostname), or set cluster-preferred-endpoint-type to ip"
	} else if port == "0" {
		why = "the node announces no port for this kind of connection (TLS or plain TCP)"
	}
	return fmt.Errorf("redispool: cluster: %s: CLUSTER SLOTS from %s gives %s as %q: %s", slots, from, what, endpoint, why)
}

// undialable returns an error for each master of t whose endpoint
// cannot be dialed, naming the slots it serves.
func (t *slotTable) undialable() []error {
	var errs []error
	for i := 1; i < len(t.shards); i++ {
		if sh := &t.shards[i]; sh.master == nil {
			errs = append(errs, endpointError(t.slotRanges(uint16(i)), "their master", sh.endpoint, t.from))
		}
	}
	return errs
}

// slotRanges describes the slots of shard i: "slots 0-5460, 10923".
func (t *slotTable) slotRanges(i uint16) string {
	var b strings.Builder
	n := 0
	for s := 0; s < slotCount; s++ {
		if t.slots[s] != i {
			continue
		}
		e := s
		for e+1 < slotCount && t.slots[e+1] == i {
			e++
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n += e - s + 1
		if e == s {
			fmt.Fprintf(&b, "%d", s)
		} else {
			fmt.Fprintf(&b, "%d-%d", s, e)
		}
		s = e
	}
	if n == 1 {
		return "slot " + b.String()
	}
	return "slots " + b.String()
}
