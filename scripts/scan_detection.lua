-- scan_detection: this host, as a client, scans others.
--
-- A scan meets ports that answer nothing (filtered) or answer RST (closed),
-- so both the no-reply sets and the refused sets (flowcheck extension) are
-- read. Counts are distinct ports and peers gained over the last
-- window_ticks runs (per-check state, see host_consts.growth); the check
-- never calls host.resetHostContacts(), which would clear the sets for every
-- other check of the host too.
--
-- Vertical scan: many ports, few peers (ports >= vertical_ports and
-- ports >= vertical_ports_per_peer x peers). P2P and busy clients fail on
-- about one port per peer, so they do not match.
-- Horizontal sweep: many peers on a handful of ports (peers >=
-- horizontal_peers, ports <= horizontal_max_ports). Unanswered peers count
-- only when the unanswered conversations are mostly TCP, so that a DNS
-- resolver whose UDP queries go unanswered is not a sweep; refused peers are
-- TCP by definition.
--
-- Lua sees only the sizes of the sets, not their union. Ports are the larger
-- of the two port counts: a sweep meets the same few ports in both sets, so
-- their sum would double them. Peers are the sum of the no-reply and refused
-- peer counts: a sweep splits its targets between dead or filtered
-- addresses (no reply) and live hosts without the service (RST), and the
-- larger count alone would miss a sweep split in two halves under the
-- threshold. A peer that is in both sets (one port silent, another
-- refused) is counted twice, so the peer figure is an upper bound of the
-- distinct peers (at most twice their number); the alert message gives the
-- two counts rather than a total that would read as distinct peers.
local host_consts = require("host_consts")

local scan_detection = {}

function scan_detection.check(host_info)
  local nr_ports = host.getNumContactedTCPUDPServerPortsNoTX()
  local ref_ports = host.getNumContactedTCPServerPortsRefused()
  local nr_peers = host.getNumContactedPeersAsClientTCPUDPNoTX()
  local ref_peers = host.getNumContactedPeersAsClientTCPRefused()
  if nr_ports + ref_ports + nr_peers + ref_peers == 0 then
    return
  end
  local p = host_info.params
  local w = p.window_ticks or 2
  local st = host_info.state
  local growth = host_consts.growth
  local uni = host.getUnidirectionalTCPUDPFlowsStats().as_client
  local d_tcp = growth(st, "tcp", uni.tcp, w)
  local d_udp = growth(st, "udp", uni.udp, w)
  local d_nr_ports = growth(st, "nr_ports", nr_ports, w)
  local d_ref_ports = growth(st, "ref_ports", ref_ports, w)
  local d_nr_peers = growth(st, "nr_peers", nr_peers, w)
  local d_ref_peers = growth(st, "ref_peers", ref_peers, w)

  -- The union of the two port sets is at least the larger one; the union of
  -- the peer sets is at most the sum (see the header).
  local ports = math.max(d_nr_ports, d_ref_ports)
  local all_peers = d_nr_peers + d_ref_peers
  local sweep_peers = d_ref_peers
  if d_tcp >= d_udp then
    sweep_peers = sweep_peers + d_nr_peers
  end

  local kind
  if ports >= (p.vertical_ports or 100) and ports >= (p.vertical_ports_per_peer or 4) * all_peers then
    kind = "vertical scan"
  elseif sweep_peers >= (p.horizontal_peers or 16) and ports <= (p.horizontal_max_ports or 8) then
    kind = "horizontal sweep"
  end
  if kind then
    host.triggerAlert(p.value or host_consts.score.critical, string.format(
      "%s: %d ports, %d no-reply + %d refused peers (no-reply ports %d, refused ports %d)",
      kind, ports, d_nr_peers, d_ref_peers, d_nr_ports, d_ref_ports))
  end
end

return scan_detection
