// Package aggregate holds per-host state built from flow records: identity,
// address flags, traffic and L7 counters, and the no-reply ("NoTX") and
// refused contact sets that ntopng's host.* Lua API reads.
//
// # Hosts
//
// A host is keyed by (IP, VLAN). Every record updates its two hosts: bytes
// and packets sent and received (biflow reverse counters included), first
// and last seen (from the pipeline clock, never record timestamps), last
// MAC, and per-application counters. The application is the record's
// AppName (nProbe L7_PROTO_NAME), else its AppID (an nDPI id, or an IE 95
// applicationId with an IANA-port selector) through a table, else a guess
// from the well-known port of the lower port then the higher, with nDPI's
// names, else "Unknown". An application's flows count conversations, as
// ntopng's bidirectional flows do: of the two unidirectional records of a
// conversation only the client's counts (the higher port's, for UDP); a
// one-sided UDP conversation whose only datagram came from the lower port
// counts when the tracker decides it, on both hosts. A host keeps at most
// max_l7_protocols names; the rest go to "Other". Names are interned per
// table into small ids (the hot path compares two bytes, snapshots return
// names): every name the package can guess is known from the start, and at
// most 8192 names in all, exporter-supplied ones included; a record whose
// new name would pass that bound counts under "Other" (and
// flowcheck_aggregate_l7_names_overflow_total). Flags: local (inside local_networks), multicast
// (224.0.0.0/4, ff00::/8), broadcast (255.255.255.255 and the network and
// broadcast addresses of an IPv4 local network of /30 or larger), unicast
// (neither), blacklisted (in a blacklist file), rx_only (never seen sending
// a packet).
//
// # Conversations, one-sided and refused
//
// A conversation is a TCP or UDP 5-tuple plus VLAN, both directions
// together. ICMP is never a conversation (an ICMP error is not a reply).
//
// Client and server: for TCP, when exactly one direction's (cumulative)
// flags show SYN without ACK, that side is the client. Otherwise the side
// with the lower port is the server; on equal ports the side with the lower
// address is the client. Record order never decides: exporters put the
// lower address first in biflows.
//
// A conversation is one-sided when its server sent no packet back. It is
// refused when it is TCP and the server's packets carry RST and no SYN (the
// server answered with RST only, no SYN-ACK): a RST is a reply, so a
// refused conversation is not one-sided. Everything else is answered and
// changes no set. A lone direction whose sender does not look like a
// client (TCP without SYN-only flags, from the lower port) is a server
// talking to a silent client and changes nothing; a lone UDP sender is
// always the client.
//
// Unidirectional exports (NetFlow v5/v9, IPFIX without reverse elements;
// softflowd and pmacctd send one record per direction and skip a silent
// direction) go through the reply tracker: the first record of a
// conversation opens it for reply_window (default 30 s) of clock time. A
// record of the other direction within the window answers it; it is then
// decided at once from both directions' flags (answered or refused) and
// kept as a tombstone until the window ends, so that late records of the
// same conversation do not open a new one. When the window ends with one
// direction only, the conversation is one-sided. The tracker is bounded
// (max_pending); when full, the oldest conversation is decided early and
// counted. Both directions of a conversation that arrive next to each
// other in one batch (exporters that expire the two together, as softflowd
// and pmacctd do, send most conversations so) are decided at once, with the
// same verdict, without entering the tracker: their tombstone goes to a
// two-way cache of max_pending/4 entries (64-bit key hashes and the
// window's end), where newer pairs may take its slot before the window
// ends (a late record then opens a new conversation, as after an
// overflow). A reply after the window does not answer the conversation: it
// opens a new one.
//
// A biflow record (RFC 5103 reverse elements, or IEs 23/24) is decided at
// once: zero packets in one direction make it one-sided with the other
// side as sender. nProbe's per-role flags (client/server TCP flags) are
// used instead of the forward/reverse flags when present. Biflows are not
// remembered: an exporter that re-exports a long one-sided biflow (active
// timeout) counts it again in the unidirectional counters; the sets, being
// sets, do not change.
//
// On a one-sided conversation: the client's "peers as client" set gains
// the server IP and its "server ports" set the server port; the server's
// "peers as server" set gains the client IP; the client's egress and the
// server's ingress unidirectional counters (by TCP/UDP) go up by one.
// Refused conversations fill a second, identical group of sets and
// counters (flowcheck extensions); fold_refused_into_noreply also counts
// them in the first. ResetContacts clears both groups.
//
// A one-sided verdict is only as good as the ingest: a datagram lost
// before decoding (the collector tells IngestLost), or a batch accounted
// without stitching because ingest fell behind (ApplyTrafficOnly), may
// have held the reply. With withhold_after_ingest_loss (the default) a one-sided
// conversation is not committed, but counted as withheld, when a loss of
// more than ingest_loss_tolerance (0.1 %) of a second's datagrams
// happened from one reply window before its first record (a reply may
// come first) to its decision. A smaller loss falsifies about that share
// of a host's answered conversations, too few to matter. Under sustained overload the no-reply sets
// therefore stop growing rather than fill with answered conversations.
// Losses upstream of the collector (the network, an exporter's own
// drops) are not seen.
//
// Sets are exact up to exact_set_size members (addresses as 64-bit
// hashes), then a HyperLogLog sketch of precision 14 (0.81 % standard
// error).
//
// # Cluster copies
//
// In a cluster (role check) a record arrives as copies, one under the
// partition of each host (flow.Record.Sides names the host or hosts a copy
// is for; zero, a record decoded in this process, is both). A copy
// accounts traffic, L7, MAC and flags for the host(s) it names only. Its
// conversation is stitched from the copies that name the same host(s), so
// that a worker receiving the copies of both hosts (it owns both
// partitions) decides the conversation once per host, and commits each
// verdict to the host(s) the copies named: every host's figures equal
// those of one process fed the records whole. Drop forgets the hosts of
// partitions handed to another worker.
//
// # Under sampling
//
// A record whose SamplingRate N is above 1 shows about one packet in N. A
// reply of k packets then goes unseen with probability (1 - 1/N)^k, so
// the absence of a reply on a 5-tuple proves nothing: at 1-in-10 most
// short benign conversations would look one-sided. Such records are
// therefore judged on what was sampled, not on what was not:
//
//   - Only TCP is judged. A sampled UDP record changes no set (a reply
//     may be one unsampled datagram, and there is no handshake to tell
//     an attempt): UDP scans are not seen under sampling.
//   - The unit is the service contact: one client, one server address
//     and port, any client port, over one reply window (opened by its
//     first sampled record), at one rate. Its sampled packets' flags are
//     ORed per side, and it is decided when the window ends, never
//     earlier. The sender is the client when its flags show SYN without
//     ACK, else when it has the higher port (as countsFlow).
//   - Refused: the server sent RST, and neither SYN nor data flags (PSH,
//     FIN, URG), and the client acknowledged nothing (no ACK): a sampled
//     RST answering an attempt, whether the attempt was sampled or not.
//   - One-sided: the client sent only attempts (SYN without ACK or RST)
//     and no packet of the server was sampled. This is an attempt whose
//     answer was not seen: it may have been refused or answered unseen.
//   - Anything else is answered: a SYN-ACK or data from the server, or an
//     ACK from the client (an established connection), was sampled.
//
// A benign client's contact looks one-sided only when its attempt alone
// was sampled out of the whole service contact; a scan shows about 2P/N
// of P probed ports (the SYN or the RST). The sets hold what was seen (a
// lower bound: a distinct count cannot be scaled by N, a port probed 20
// times shows once or twice); each sampled verdict counts N conversations
// in the unidirectional and refused counters (an estimate, as bytes and
// packets are scaled; a refused conversation whose SYN and RST were both
// sampled in different windows counts twice). The snapshot's Sampling
// tells the largest rate behind a host's verdicts and how many sampled
// verdicts there were (host.getSamplingInfo()). A rate of 0 (unknown) or 1
// is exact: the 5-tuple semantics above.
//
// # Keys
//
// Internally a host is keyed by its address's 16-byte form and VLAN (IPv4
// v4-mapped, zone dropped), and looked up by a 64-bit hash of that key, so
// a v4-mapped IPv6 address is the same host as its IPv4 address, in records
// and in Snapshot/ResetContacts alike; keys handed out (AppendKeys,
// the ExpiryListener, snapshots) are always unmapped.
//
// # Adding a per-host figure
//
// A figure every record adds to goes through a batch's sums first: a field
// on appSum or hostSum (batchtraffic.go), summed in batchTraffic.add and
// given to the host in batchTraffic.applyTo, then a field on host
// (host.go: TestHostSize keeps the host in its size class, so put a cold
// field after the L7 room) and on HostSnapshot, filled in
// SnapshotCounters (read.go). A figure of verdicts goes in host.commit
// instead. TestBatchSumsAsRecords compares whole snapshots, so it covers
// the new figure once the snapshot carries it.
//
// # Bounds
//
// The table holds at most max_hosts hosts; new remote hosts are refused
// earlier, leaving local_reserve_percent of the room to local hosts, and
// refusals are counted. Hosts idle longer than idle_timeout.local or
// .remote are removed by Advance, which reports each to the ExpiryListener.
package aggregate
