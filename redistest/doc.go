// Package redistest starts real Redis deployments for tests — a
// redis-server, a TLS server, a Sentinel group, a Cluster — and breaks
// them on demand: kill, restart, pause, failover, reshard, fake servers
// that misbehave, a proxy that stalls. It is the launcher behind
// redispool's own integration and fault-injection tests and behind
// package redispooltest, and is usable on its own by any Go test that
// needs a real Redis: it does not import redispool.
//
// Every helper takes a testing.TB, calls t.Helper, and registers its own
// teardown with t.Cleanup: servers are stopped, listeners and connections are
// closed, and every goroutine the package starts has returned before the
// cleanup finishes, so tests can run under goleak. On Linux a server also
// dies with the test binary that started it when no cleanup runs (go test's
// -timeout, a killed CI job).
//
// # Real servers
//
// StartServer runs redis-server from $PATH on a free loopback port with
// persistence disabled and its working directory in t.TempDir. It skips the
// test when the binary is missing, unless REDISPOOL_REQUIRE_SERVER=1, in which
// case it fails it. StartUnixServer listens on a unix socket instead and
// StartTLSServer on a TLS port, with certificates generated for the test.
//
//	srv := redistest.StartServer(t, "--requirepass", "secret", "--maxclients", "10")
//	// dial srv.Addr() ...
//	srv.Restart() // same port, same arguments
//	if got := srv.CountClients(t, nil); got != 0 {
//		t.Errorf("got %d clients; want 0", got)
//	}
//
// # Sentinel deployments
//
// StartSentinel starts a master, its replicas and three Sentinels, each a
// Server with its own directory (each Sentinel runs "redis-server
// sentinel.conf --sentinel" on a writable conf of its own), and returns once
// the Sentinels agree (CKQUORUM) and know each other and the replicas.
// Failover, WaitMaster, WaitReady and SetInfoPeriod drive and observe
// failovers; every Server can be killed (Kill), paused (Pause, SIGSTOP),
// resumed and restarted without its dump.rdb (Restart).
//
//	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
//	old := d.MasterAddr(t)
//	d.Failover(t)
//	addr := d.WaitMaster(t, old)
//
// # Clusters
//
// StartCluster runs a Redis Cluster of real processes, 3 masters and 3
// replicas by default, each node on its own data and bus port below the
// ephemeral range (Redis refuses cluster mode when the bus port, port +
// 10000 by default, would pass 65535), created with redis-cli --cluster
// create and returned once every node serves the full slot map with every
// replica in CLUSTER SLOTS. Each node is a ClusterNode: a Server with its
// node ID.
//
//	c := redistest.StartCluster(t, redistest.ClusterOptions{})
//	seeds := c.Addrs()
//	m := c.BeginMigration(t, slot, c.Masters(t)[1]) // the slot now answers ASK ...
//	m.MoveKeys(t, 10)
//	m.Finish(t)                                     // ... and then MOVED
//	c.Reshard(t, from, to, 1000)                    // redis-cli --cluster reshard
//	c.Failover(t, c.Replicas(t, master)[0])         // CLUSTER FAILOVER
//	c.Kill(master); c.WaitMaster(t, replica)        // a crash, and the promotion
//	n := c.AddNode(t); c.RemoveNode(t, n)
//
// Topology, Masters, Replicas, MasterOf and Slots read the live topology
// from CLUSTER NODES and CLUSTER SLOTS; WaitStable waits until every
// running node agrees on the slot map. KeySlot, KeyForSlot and KeysInSlot
// give keys of a chosen slot.
//
// # Inspecting the server
//
// Each Server owns an admin connection (named AdminName, and never counted or
// killed by the helpers) that knows the server's password and TLS settings.
// Server.Do runs a command on it, Server.ClientList parses CLIENT LIST, and
// CountClients, WaitClients and KillClients filter that list.
//
// # Faults
//
// NewProxy puts a loopback TCP proxy in front of a server: Pause cuts traffic
// silently in both directions without closing anything, Resume heals it, and
// CloseAll resets every proxied connection. NewFakeServer accepts connections
// and hands each to a handler; Garbage, Truncated, HugeBulk, SlowReply and the
// other ready-made handlers act as a broken or hostile server. Dispatch
// turns a function from a command to its reply into a handler, for a fake
// of your own (FakeSentinel is one); its FakeConn lets another goroutine
// push to the connection, as a server does to a subscriber.
package redistest
