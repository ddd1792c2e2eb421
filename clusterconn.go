package redispool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterConn is a connection from Cluster.Get, GetContext or
// GetForKeys.
//
// While it holds no session state on a node it is free: each keyed
// command goes to its key's node, and a keyless one to any master (the
// node it last used, if it still holds a connection there). What ties
// it to a node is what ties a redigo connection to its server: a
// transaction or WATCH, replies not yet read, a subscription, or other
// state the tracker follows (SELECT aside: a cluster has only database
// 0 and refuses any other). Keyless commands sent while free are held
// until a key says where the pipeline runs, and go out with it; tied,
// a command for a key served elsewhere fails with ErrCrossSlot before
// any I/O. A connection from GetForKeys stays on its node.
//
// A command refused before any I/O inside MULTI dooms the transaction,
// as the server's own refusals do: the later commands are refused too,
// and EXEC discards the transaction and returns an EXECABORT error.
//
// With ClusterConfig.Node.PipelineGet, a Do that needs no node
// connection goes down the node pools' shared ones (pipeGet).
type clusterConn struct {
	c    *Cluster
	ac   *activeConn  // the connection in use; nil when none is held
	node *clusterNode // the node of ac
	held []heldCmd    // keyless commands awaiting a node, in order
	skip int          // replies of held commands that Do already answered

	pinned     bool // from GetForKeys: stays on its node
	subscribed bool // a subscription was sent: stays on its node, where a receiver may be reading
	multi      bool // MULTI sent or held, and no EXEC or DISCARD after it
	doom       *TxAbortError
	// aborts lists the EXECs sent, by Send, for doomed transactions:
	// each went out as a DISCARD, whose reply stands for the error.
	aborts []pendingAbort

	// With ClusterConfig.Node.PipelineGet: wrote says a command that may
	// write went down a shared connection since the last WAIT, the last
	// one for a key of wroteSlot, served by wroteNode as the slot map
	// said after it (see doPiped).
	wrote     bool
	wroteSlot int
	wroteNode *clusterNode

	closed atomic.Bool
	// recv is held shared by Receive and taken by Close, as in
	// activeConn; cur is ac, for a Close that finds a receiver.
	recv sync.RWMutex
	cur  atomic.Pointer[activeConn]
}

// heldCmd is a command sent before the connection was bound.
type heldCmd struct {
	cmd  string
	args []any
}

// pendingAbort is the DISCARD sent in place of a doomed EXEC: the seq-th
// command sent on ac, as its tracker counts them.
type pendingAbort struct {
	seq uint64
	err *TxAbortError
}

var (
	_ redis.Conn            = (*clusterConn)(nil)
	_ redis.ConnWithTimeout = (*clusterConn)(nil)
	_ redis.ConnWithContext = (*clusterConn)(nil)
)

// ErrTxAborted is wrapped by the error of EXEC for a transaction that a
// command refused before any I/O (ErrCrossSlot, a failed borrow) doomed
// on a Cluster connection, and by the errors of the commands refused
// after it.
var ErrTxAborted = errors.New("redispool: cluster: transaction aborted")

// TxAbortError is the error EXEC returns for a transaction on a Cluster
// connection that was doomed by a command refused before any I/O: the
// transaction was discarded on the server and nothing of it ran. Like
// the server's own EXECABORT it is a redis.Error starting with
// "EXECABORT"; it also wraps ErrTxAborted and the refusal (so
// errors.Is(err, ErrCrossSlot) holds for a cross-slot command).
type TxAbortError struct {
	Cause error // why the command was refused
}

func (e *TxAbortError) Error() string {
	return "EXECABORT Transaction discarded because of a previous error: " + e.Cause.Error()
}

func (e *TxAbortError) Unwrap() []error {
	return []error{redis.Error(e.Error()), ErrTxAborted, e.Cause}
}

// noTimeout marks a do without a timeout of its own: the bound
// connection's ReadTimeout applies.
const noTimeout = time.Duration(-1)

func (cc *clusterConn) Do(cmd string, args ...any) (any, error) {
	return cc.do(context.Background(), noTimeout, cmd, args)
}

func (cc *clusterConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	return cc.do(context.Background(), timeout, cmd, args)
}

func (cc *clusterConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return cc.do(ctx, noTimeout, cmd, args)
}

// free reports whether the connection holds no session state: it may
// move to any node.
// Unbound, or holding only held commands (a MULTI among them), it may
// choose its node.
func (cc *clusterConn) free() bool {
	return cc.ac == nil || !cc.pinned && !cc.subscribed && len(cc.aborts) == 0 && cc.idle()
}

// idle reports whether the bound connection has no session state on its
// node and no reply unread.
func (cc *clusterConn) idle() bool { return cc.ac.idle() }

// binds reports whether a keyless command of kind ties the connection
// to the node it runs on.
func binds(kind cmdKind) bool {
	return kind == kindSetName || kind == kindUnresettable || kind == kindSubscribe || kind == kindSSubscribe
}

func (cc *clusterConn) do(ctx context.Context, timeout time.Duration, cmd string, args []any) (any, error) {
	if err := cc.usable(); err != nil {
		return nil, err
	}
	kind := classify(cmd, args)
	if cc.doom != nil {
		return cc.doDoomed(ctx, timeout, cmd, kind)
	}
	slot, keyed, _ := commandSlot(cmd, args)
	if !keyed {
		slot = -1
	}
	if cc.pipeGet(timeout, cmd, args) {
		return cc.doPiped(ctx, slot, cmd, args)
	}
	if cc.wrote && lookupCommand(cmd).block == blockOwnWrites {
		if err := cc.markWrites(ctx, cmd); err != nil {
			return nil, err
		}
	}
	if cc.free() {
		switch {
		case keyed, binds(kind), len(cc.held) > 0:
		case cmd == "":
			return nil, nil // nothing pending, as with redigo
		case kind == kindMulti:
			// Hold it until a key says where the transaction runs. Its
			// own reply, skipped later, can only be OK.
			cc.held = append(cc.held, heldCmd{cmd, args})
			cc.skip++
			cc.multi = true
			return "OK", nil
		case cc.ac == nil:
			// PING, SELECT 0, TIME: any master answers, and the
			// connection stays free.
			if timeout == noTimeout {
				timeout = cc.c.readTO
			}
			return cc.c.do(ctx, timeout, -1, false, nil, 0, cmd, args)
		}
		if err := cc.bind(ctx, slot); err != nil {
			return nil, cc.refused(err)
		}
	} else if keyed {
		if err := cc.checkSlot(slot, cmd, args); err != nil {
			return nil, cc.refused(err)
		}
	}
	if kind == kindSubscribe || kind == kindSSubscribe {
		cc.subscribed = true
	}

	for redirects := 1; ; redirects++ {
		clean := !cc.subscribed && cc.idle()
		recvd := cc.ac.received()
		reply, err := cc.run(ctx, timeout, cmd, args)
		switch kind {
		case kindMulti:
			cc.multi = true
		case kindEndMulti:
			cc.multi = false
		}
		reply, err = cc.afterDo(cmd, recvd, reply, err)
		rkind, rerr := classifyReply(err)
		switch rkind {
		case replyCrossSlot:
			return nil, crossSlotError{rerr}
		case replyMoved, replyAsk:
		default:
			return reply, err
		}
		rd, perr := cc.c.redirected(rkind, rerr, cc.node.addr)
		if perr != nil {
			return nil, perr
		}
		if !clean || cc.c.maxRedir == 0 {
			// The connection holds state on this node (a transaction,
			// WATCH, unread replies): the command cannot follow.
			return nil, rd
		}
		if err := cc.c.redirectLimit(rd, redirects); err != nil {
			return nil, err
		}
		if kind == kindPlain {
			// Nothing ties the command to this connection: the cluster
			// follows the redirect on a connection of the target's pool.
			// After a MOVED the connection lets go of the node (it was
			// clean), and its next command goes by the updated map.
			if !rd.Ask {
				cc.unbind()
			}
			if timeout == noTimeout {
				timeout = cc.c.readTO
			}
			return cc.c.do(ctx, timeout, slot, false, rd, redirects, cmd, args)
		}
		if rd.Ask {
			return nil, rd // WATCH and the like cannot be split across nodes
		}
		// A session command (WATCH k): run it again bound to the new
		// owner.
		cc.unbind()
		if err := cc.bind(ctx, slot); err != nil {
			return nil, err
		}
	}
}

// pipeGet reports whether a Do of cmd goes down the node pools' shared
// connections, as Cluster.Do's does: with ClusterConfig.Node.PipelineGet,
// for a command the table lets through (or SELECT 0, the one database a
// cluster has, which leaves no state), sent with Do or DoContext (a
// timeout of its own may be longer than a shared connection's), while
// the connection holds no node connection and no held command.
//
// Once a command needed a node connection (one that blocks or touches
// session state, DoWithTimeout, Send), the clusterConn works as without
// PipelineGet until a MOVED lets go of it: on the node it is bound to,
// and on the others by binding again.
func (cc *clusterConn) pipeGet(timeout time.Duration, cmd string, args []any) bool {
	if !cc.c.node.PipelineGet || cc.ac != nil || len(cc.held) > 0 || timeout != noTimeout {
		return false
	}
	info := lookupCommand(cmd)
	if info.pipelined {
		return true
	}
	if info.state != kindSelect || len(args) != 1 {
		return false
	}
	n, ok := argInt(args[0])
	return ok && n == 0
}

// doPiped runs cmd, for slot (-1: keyless), as Cluster.Do would, on a
// master: what a borrower writes, it reads back, as on a node connection
// of its own.
//
// Every command gives the result it would give on a node connection of
// its own; WAIT and WAITAOF need care (see markWrites). A command that
// failed after it was sent leaves nothing on this connection: its reply,
// if it comes, is read and dropped by the shared connection, so the
// connection stays usable, as it does after a failed command while
// free without PipelineGet.
func (cc *clusterConn) doPiped(ctx context.Context, slot int, cmd string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: %w", err) // nothing sent
	}
	reply, err := cc.c.dispatch(ctx, cc.c.readTO, slot, false, true, nil, 0, cmd, args, nil)
	if slot >= 0 && mayWrite(cmd, lookupCommand(cmd)) {
		cc.wrote, cc.wroteSlot, cc.wroteNode = true, slot, nil
		if t := cc.c.table.Load(); t != nil {
			cc.wroteNode = t.owner(slot)
		}
	}
	return reply, deadlineErr(ctx, err)
}

// waitMarkScript writes and deletes its key at once: a write Redis
// replicates (as MULTI, SET, DEL, EXEC) that leaves no data. It runs as
// a script, not as MULTI ... EXEC, because EXEC would end a WATCH the
// borrower holds.
const waitMarkScript = "redis.call('SET', KEYS[1], '') redis.call('DEL', KEYS[1]) return 1"

// markWrites prepares WAIT or WAITAOF (cmd) after pipelined writes.
// They count the replicas (or disks) holding the writes of the
// connection they run on, and the borrower's writes went down shared
// ones; a node connection of the borrower's own, as any fresh one,
// would answer at once, counting replicas that lack them. So, as a
// connection of its own would be, the connection is bound to the node
// of the last pipelined write, and there makes a write later than
// those: waitMarkScript on a key of a slot that node serves, the
// write's own if it still does. A cluster does not replicate PUBLISH,
// which a Pool's PipelineGet connection uses (conn.go).
//
// The slot may have moved since the write (a MOVED reply to the
// marker: the slot map is reloaded and another slot of the node's
// taken), or be migrating (ASK: the marker key, absent, is the
// target's to take): the marker goes to another of the node's slots,
// and WAIT still counts the replicas of the node that took the write,
// as on a connection of its own bound there. Only when the node serves
// no slot any more (a failover, the last slot moved away) does the
// connection bind to the slot's new master instead.
//
// The marker needs EVAL and write access to the keys
// "__redispool:wait:{N}"; an ACL user without them gets the NOPERM
// error here, naming the key. A connection bound to a node since the
// pipelined writes (nothing is pipelined while bound) runs WAIT there,
// as a connection of its own would; the marker goes first only if that
// is the write's node or serves the write's slot; with replies unread,
// it goes out behind them.
func (cc *clusterConn) markWrites(ctx context.Context, cmd string) error {
	switch {
	case cc.multi:
		return nil // queued: WAIT in a transaction does not wait
	case len(cc.held) > 0:
		return errors.New("redispool: cluster: " + cmd + " after commands sent with Send on a PipelineGet connection that wrote pipelined: read their replies first")
	case cc.ac == nil:
		if err := cc.bindWritten(ctx); err != nil {
			return err
		}
	case cc.node != cc.wroteNode && !cc.serves(cc.wroteSlot):
		// Bound since the pipelined writes (nothing is pipelined while
		// bound), and to another node: WAIT is for this node's writes,
		// as on a connection of its own.
		return nil
	case cc.ac.sent() != cc.ac.received():
		// Replies unread: the marker goes out behind them, and the Do of
		// WAIT reads its reply with theirs, as redigo's Do reads every
		// reply pending (returning the first error among them).
		// Its reply is not seen here: a stale slot map makes it fail
		// with the MOVED that WAIT's Do then returns.
		if err := cc.ac.Send("EVAL", waitMarkScript, 1, waitMarkKey(cc.markSlot())); err != nil {
			return err
		}
		cc.wrote = false
		return nil
	}
	slot := cc.markSlot()
	for attempt := 1; ; attempt++ {
		key := waitMarkKey(slot)
		_, err := cc.ac.DoContext(ctx, "EVAL", waitMarkScript, 1, key)
		if err == nil {
			cc.wrote = false
			return nil
		}
		kind, rerr := classifyReply(err)
		if (kind == replyMoved || kind == replyAsk) && attempt < 3 && slot >= 0 {
			if kind == replyMoved {
				// The map is stale: every slot taken from it may be.
				cc.c.redirected(kind, rerr, cc.node.addr)
				if rerr := cc.c.Refresh(ctx); rerr == nil {
					if next := cc.nextOwnSlot(slot - 1); next >= 0 {
						slot = next
						continue
					}
				}
			} else if next := cc.nextOwnSlot(slot); next >= 0 && next != slot {
				slot = next
				continue
			}
		}
		return fmt.Errorf("redispool: cluster: marking the writes sent pipelined before %s, on key %q of %s: %w", cmd, key, cc.node.addr, err)
	}
}

// markSlot returns the slot for the marker: the write's, if the bound
// node serves it as far as the slot map knows, or another of the
// node's.
func (cc *clusterConn) markSlot() int {
	slot := cc.wroteSlot
	if !cc.serves(slot) {
		if next := cc.nextOwnSlot(slot); next >= 0 {
			slot = next
		}
	}
	return slot
}

// bindWritten binds the connection to the node that took the last
// pipelined write, or, if that serves no slot any more, to the master
// of the write's slot.
func (cc *clusterConn) bindWritten(ctx context.Context) error {
	if n := cc.wroteNode; n != nil && cc.ownSlot(n, 0) >= 0 {
		if pc, err := cc.c.borrowFrom(ctx, n); err == nil {
			cc.ac = n.pool.handOut(pc)
			cc.node = n
			cc.cur.Store(cc.ac)
			return nil
		}
	}
	return cc.bind(ctx, cc.wroteSlot)
}

// nextOwnSlot returns the first slot after slot, round the ring, that
// the node of ac serves as far as the slot map knows, slot itself last;
// -1 if none.
func (cc *clusterConn) nextOwnSlot(slot int) int {
	return cc.ownSlot(cc.node, slot+1)
}

// ownSlot returns the first slot from from, round the ring, that the
// slot map gives n; -1 if none.
func (cc *clusterConn) ownSlot(n *clusterNode, from int) int {
	t := cc.c.table.Load()
	if t == nil {
		return -1
	}
	for i := range slotCount {
		s := (from + i) % slotCount
		if t.owner(s) == n {
			return s
		}
	}
	return -1
}

// waitMarkKey returns the key markWrites writes in slot: a hash tag of
// decimal digits, the first that hashes to slot. Every slot has one
// below 1<<20 (TestWaitMarkKeyCoversEverySlot); finding it takes some
// 16384 CRC16s on average, little beside the WAIT it precedes.
func waitMarkKey(slot int) string {
	for i := 0; ; i++ {
		tag := strconv.Itoa(i)
		if Slot(tag) == slot {
			return "__redispool:wait:{" + tag + "}"
		}
	}
}

// afterDo fixes up what a Do on ac returned, recvd being the replies
// the tracker had counted before it: redigo's Do read every pending
// reply, among them those of held commands Do already answered, and
// the DISCARDs that stand for doomed EXECs.
func (cc *clusterConn) afterDo(cmd string, recvd uint64, reply any, err error) (any, error) {
	skip := cc.skip
	cc.skip = 0
	aborts := cc.aborts
	cc.aborts = cc.aborts[:0]
	if cmd != "" {
		if len(aborts) > 0 && err == nil {
			// As redigo's Do returns the first error among the pending
			// replies.
			err = aborts[0].err
		}
		return reply, err
	}
	replies, ok := reply.([]any)
	if !ok {
		return reply, err
	}
	for _, a := range aborts {
		if i := a.seq - recvd - 1; i < uint64(len(replies)) {
			replies[i] = a.err
		}
	}
	return replies[min(skip, len(replies)):], err
}

// refused returns err, the refusal of a command before any I/O, after
// dooming the transaction it was part of, if any.
func (cc *clusterConn) refused(err error) error {
	if cc.multi && cc.doom == nil {
		cc.doom = &TxAbortError{Cause: err}
	}
	return err
}

// refusal is the error of a command refused because its transaction is
// doomed.
func (cc *clusterConn) refusal() error {
	return fmt.Errorf("%w: command not sent; EXEC will discard the transaction: %w", ErrTxAborted, cc.doom.Cause)
}

// doDoomed runs a Do of a command of kind in a doomed transaction: EXEC
// and DISCARD discard it, on the server if it got there; anything else
// is refused.
func (cc *clusterConn) doDoomed(ctx context.Context, timeout time.Duration, cmd string, kind cmdKind) (any, error) {
	if kind != kindEndMulti {
		return nil, cc.refusal()
	}
	// EXEC or DISCARD: both discard.
	abort := cc.doom
	cc.doom, cc.multi = nil, false
	var reply any = "OK"
	var err error
	if cc.ac != nil && len(cc.held) == 0 {
		reply, err = cc.run(ctx, timeout, "DISCARD", nil)
		cc.skip = 0
		cc.aborts = cc.aborts[:0]
	} else {
		// Never sent: nothing to discard on the server. Held commands
		// went out with the first key, so a bound connection holds none
		// of this transaction's.
		cc.held, cc.skip = cc.held[:0], 0
	}
	switch {
	case !isExec(cmd):
		return reply, err // DISCARD: what was asked for
	case err != nil:
		return nil, errors.Join(abort, err)
	}
	return nil, abort
}

func isExec(cmd string) bool { return strings.EqualFold(cmd, "EXEC") }

func (cc *clusterConn) run(ctx context.Context, timeout time.Duration, cmd string, args []any) (any, error) {
	if timeout == noTimeout {
		return cc.ac.DoContext(ctx, cmd, args...)
	}
	return cc.ac.DoWithTimeout(timeout, cmd, args...)
}

// usable returns the error every method returns after Close, or after
// the cluster's Close on a connection not yet bound.
func (cc *clusterConn) usable() error {
	switch {
	case cc.closed.Load():
		return ErrConnClosed
	case cc.ac == nil && cc.c.isClosed():
		return ErrPoolClosed
	}
	return nil
}

// bind makes ac a connection to the master of slot (-1: any master),
// keeping the one it holds if that serves the slot and is not broken,
// and sends the held commands on it.
func (cc *clusterConn) bind(ctx context.Context, slot int) error {
	// A connection an I/O error broke is let go of too: the connection
	// is free, so nothing of the borrower's is lost with it, and a
	// connection of its own to the node would be redialed, not kept
	// failing until the slot map moves the slot elsewhere.
	if cc.ac != nil && (!cc.serves(slot) || cc.ac.Err() != nil) {
		cc.unbind()
	}
	if cc.ac == nil {
		n, pc, err := cc.c.borrowFor(ctx, slot)
		if err != nil {
			return err
		}
		cc.ac = n.pool.handOut(pc)
		cc.node = n
		cc.cur.Store(cc.ac)
	}
	for _, h := range cc.held {
		if err := cc.ac.Send(h.cmd, h.args...); err != nil {
			return err
		}
	}
	clear(cc.held)
	cc.held = cc.held[:0]
	return nil
}

// serves reports whether the node of ac serves slot (-1: any slot), as
// far as the slot map knows.
func (cc *clusterConn) serves(slot int) bool {
	if slot < 0 {
		return true
	}
	t := cc.c.table.Load()
	if t == nil {
		return true
	}
	owner := t.owner(slot)
	return owner == nil || owner == cc.node
}

// unbind returns the connection to its pool.
func (cc *clusterConn) unbind() {
	if cc.ac != nil {
		cc.ac.Close()
		cc.ac, cc.node = nil, nil
		cc.cur.Store(nil)
	}
}

// checkSlot fails, before any I/O, a command for a slot that the node
// the connection is bound to does not serve.
func (cc *clusterConn) checkSlot(slot int, cmd string, args []any) error {
	if cc.serves(slot) {
		return nil
	}
	key, _ := commandKey(cmd, args)
	owner := cc.c.table.Load().owner(slot)
	return fmt.Errorf("%w: key %q (slot %d) is served by %s; the connection is bound to %s by %s", ErrCrossSlot, key, slot, owner.addr, cc.node.addr, cc.tie())
}

// tie names what binds the connection to its node, for errors.
func (cc *clusterConn) tie() string {
	switch {
	case cc.multi:
		return "its transaction"
	case cc.pinned:
		return "GetForKeys"
	case cc.subscribed:
		return "its subscription"
	case cc.ac.sent() != cc.ac.received():
		return "its pipeline (replies not yet read)"
	case cc.ac.watching():
		return "WATCH"
	}
	return "its session state"
}

func (cc *clusterConn) Send(cmd string, args ...any) error {
	if err := cc.usable(); err != nil {
		return err
	}
	kind := classify(cmd, args)
	if cc.doom != nil {
		return cc.sendDoomed(cmd, kind)
	}
	slot, keyed, _ := commandSlot(cmd, args)
	if cc.wrote && !cc.multi && lookupCommand(cmd).block == blockOwnWrites {
		// Queued in a transaction, WAIT does not wait: nothing to mark.
		if cc.ac != nil && cc.ac.sent() != cc.ac.received() || len(cc.held) > 0 {
			return errors.New("redispool: cluster: " + cmd + " sent with Send after other Sends on a PipelineGet connection that wrote pipelined: send it with Do, or first")
		}
		if err := cc.markWrites(context.Background(), cmd); err != nil {
			return err
		}
	}
	if cc.free() {
		if !keyed {
			// Held until a key says where the pipeline runs.
			cc.held = append(cc.held, heldCmd{cmd, args})
			cc.note(kind)
			return nil
		}
		if err := cc.bind(context.Background(), slot); err != nil {
			return cc.refused(err)
		}
	} else if keyed {
		if err := cc.checkSlot(slot, cmd, args); err != nil {
			return cc.refused(err)
		}
	}
	cc.note(kind)
	return cc.ac.Send(cmd, args...)
}

// note records a command of kind sent or held.
func (cc *clusterConn) note(kind cmdKind) {
	switch kind {
	case kindMulti:
		cc.multi = true
	case kindEndMulti:
		cc.multi = false
	case kindSubscribe, kindSSubscribe:
		cc.subscribed = true
	}
}

// sendDoomed sends a command of kind in a doomed transaction: EXEC and
// DISCARD go out as a DISCARD, and the reply to an EXEC will be the
// transaction's TxAbortError; anything else is refused.
func (cc *clusterConn) sendDoomed(cmd string, kind cmdKind) error {
	if kind != kindEndMulti {
		return cc.refusal()
	}
	abort := cc.doom
	cc.doom, cc.multi = nil, false
	if cc.ac == nil || len(cc.held) > 0 {
		// Nothing of it reached a server; its held commands are dropped,
		// and EXEC fails here for want of a reply to carry the error.
		cc.held, cc.skip = cc.held[:0], 0
		if !isExec(cmd) {
			return nil
		}
		return abort
	}
	if err := cc.ac.Send("DISCARD"); err != nil || !isExec(cmd) {
		return err
	}
	cc.aborts = append(cc.aborts, pendingAbort{seq: cc.ac.sent(), err: abort})
	return nil
}

// Flush sends what was sent. Free, held commands stay held until a key
// says where they run, unless they include a subscription, which binds
// the connection to any master (classic pub/sub reaches every node).
func (cc *clusterConn) Flush() error {
	if err := cc.usable(); err != nil {
		return err
	}
	if len(cc.held) > 0 {
		subscribe := false
		for _, h := range cc.held {
			if k := classify(h.cmd, h.args); k == kindSubscribe {
				subscribe = true
			}
		}
		if !subscribe {
			return nil
		}
		if err := cc.bind(context.Background(), -1); err != nil {
			return err
		}
	}
	if cc.ac == nil {
		return nil
	}
	return cc.ac.Flush()
}

func (cc *clusterConn) Receive() (any, error) {
	return cc.receive(context.Background(), noTimeout)
}

func (cc *clusterConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return cc.receive(context.Background(), timeout)
}

func (cc *clusterConn) ReceiveContext(ctx context.Context) (any, error) {
	return cc.receive(ctx, noTimeout)
}

var errNothingSent = errors.New("redispool: cluster: Receive on a connection with no command sent")

func (cc *clusterConn) receive(ctx context.Context, timeout time.Duration) (any, error) {
	cc.recv.RLock()
	defer cc.recv.RUnlock()
	if err := cc.usable(); err != nil {
		return nil, err
	}
	if len(cc.held) > 0 {
		// Keyless commands only: any master answers them.
		if err := cc.bind(ctx, -1); err != nil {
			return nil, err
		}
		if cc.closed.Load() {
			// Close ran meanwhile, perhaps before it could see ac.
			cc.ac.abort()
		}
		if err := cc.ac.Flush(); err != nil {
			return nil, err
		}
	} else if cc.ac == nil {
		return nil, errNothingSent
	}
	for {
		var reply any
		var err error
		if timeout == noTimeout {
			reply, err = cc.ac.ReceiveContext(ctx)
		} else {
			reply, err = cc.ac.ReceiveWithTimeout(timeout)
		}
		if cc.skip > 0 && err == nil {
			cc.skip--
			continue
		}
		cc.skip = 0
		if len(cc.aborts) > 0 && cc.ac.received() == cc.aborts[0].seq {
			abort := cc.aborts[0].err
			cc.aborts = cc.aborts[1:]
			if err == nil {
				err = abort
			} else {
				err = errors.Join(abort, err)
			}
			return nil, err
		}
		kind, rerr := classifyReply(err)
		switch kind {
		case replyCrossSlot:
			return nil, crossSlotError{rerr}
		case replyMoved, replyAsk:
			// A pipelined command cannot be followed: its neighbours ran
			// here. The caller sees the redirect; the map is patched.
			rd, perr := cc.c.redirected(kind, rerr, cc.node.addr)
			if perr != nil {
				return nil, perr
			}
			return nil, rd
		}
		return reply, err
	}
}

func (cc *clusterConn) Err() error {
	if err := cc.usable(); err != nil {
		return err
	}
	if cc.ac == nil {
		return nil
	}
	return cc.ac.Err()
}

// Close returns the connection to its pool, undoing its session state
// as Pool connections do. Held commands were never sent. A second Close
// does nothing. As with a Pool connection, Close may stop a goroutine in
// Receive: the socket is closed under it and the connection is not
// kept.
func (cc *clusterConn) Close() error {
	if cc.closed.Swap(true) {
		return nil
	}
	if !cc.recv.TryLock() {
		if ac := cc.cur.Load(); ac != nil {
			ac.abort()
		}
		cc.recv.Lock()
	}
	defer cc.recv.Unlock()
	cc.unbind()
	cc.held = nil
	return nil
}
