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
--
-- Under sampling (host.getSamplingInfo().exact is false, 1-in-N), the sets
-- hold what the samples showed (docs/lua-api.md, "Under sampling"): a scan
-- of P ports shows about 2P/N of them (its SYN or the RST answering it)
-- and a benign host at most a couple. The thresholds then apply to the
-- counts scaled down by N, but never below sampled_min_ports and
-- sampled_min_peers sampled ports or peers, the evidence below which a
-- careful operator would not page anyone. Ports are then the sum of the
-- two port counts: a sampled contact is one-sided or refused, never both,
-- so one peer's ports do not meet in the two sets.
local host_consts = require("host_consts")

-- threshold returns the sampled-evidence threshold for a count threshold t
-- at 1-in-n: t/n rounded up, at least floor.
local function threshold(t, n, floor)
  return math.max(floor, math.ceil(t / n))
end

local scan_detection = {
  -- Params and their defaults: scripting.checks.scan_detection.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    vertical_ports = 100,        -- distinct ports in the window ...
    vertical_ports_per_peer = 4, -- ... and at least this many ports per peer
    horizontal_peers = 16,       -- distinct peers in the window ...
    horizontal_max_ports = 8,    -- ... on at most this many ports
    sampled_min_ports = 8,       -- sampled 1-in-N: the ports threshold is vertical_ports/N, at least this
    sampled_min_peers = 6,       -- sampled 1-in-N: the peers threshold is horizontal_peers/N, at least this
    window_ticks = 2,            -- counts are growth over the last N runs
    value = 80,                  -- alert value (critical)
  },
}

function scan_detection.check(host_info)
  local nr_ports = host.getNumContactedTCPUDPServerPortsNoTX()
  local ref_ports = host.getNumContactedTCPServerPortsRefused()
  local nr_peers = host.getNumContactedPeersAsClientTCPUDPNoTX()
  local ref_peers = host.getNumContactedPeersAsClientTCPRefused()
  if nr_ports + ref_ports + nr_peers + ref_peers == 0 then
    return
  end
  local p = host_info.params
  local w = p.window_ticks
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

  local vertical_ports = p.vertical_ports
  local horizontal_peers = p.horizontal_peers
  local vports = ports
  local sampling = host.getSamplingInfo()
  local n = sampling.rate
  if not sampling.exact then
    vports = d_nr_ports + d_ref_ports
    vertical_ports = threshold(vertical_ports, n, p.sampled_min_ports)
    horizontal_peers = threshold(horizontal_peers, n, p.sampled_min_peers)
  end

  local kind
  if vports >= vertical_ports and vports >= p.vertical_ports_per_peer * all_peers then
    kind = "vertical scan"
    ports = vports
  elseif sweep_peers >= horizontal_peers and ports <= p.horizontal_max_ports then
    kind = "horizontal sweep"
  end
  if kind then
    local msg = string.format(
      "%s: %d ports, %d no-reply + %d refused peers (no-reply ports %d, refused ports %d)",
      kind, ports, d_nr_peers, d_ref_peers, d_nr_ports, d_ref_ports)
    if not sampling.exact then
      msg = msg .. string.format(", sampled 1-in-%d: figures are what the samples showed", n)
    end
    host.triggerAlert(p.value, msg)
  end
end

return scan_detection
