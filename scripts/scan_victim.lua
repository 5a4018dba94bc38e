-- scan_victim: this host, as a server, is scanned or probed: many clients got
-- no reply or a refusal (RST) from it, or many of its inbound conversations
-- went unanswered or refused, over the last window_ticks runs.
--
-- Under sampling (host.getSamplingInfo().exact is false, 1-in-N) the client
-- sets hold what the samples showed, and each sampled conversation counts N:
-- the thresholds apply to the sampled clients and conversations, scaled
-- down by N but never below sampled_min_peers clients or
-- sampled_min_conversations sampled conversations (see scan_detection).
local host_consts = require("host_consts")

local scan_victim = {
  -- Params and their defaults: scripting.checks.scan_victim.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    peers = 16,                    -- unanswered + refused clients in the window
    conversations = 100,           -- or unanswered + refused inbound conversations in the window
    sampled_min_peers = 6,         -- sampled 1-in-N: peers/N, at least this many sampled clients
    sampled_min_conversations = 8, -- sampled 1-in-N: conversations/N, at least this many sampled
    window_ticks = 2,              -- counts are growth over the last N runs
    value = 40,                    -- alert value (warning)
  },
}

function scan_victim.check(host_info)
  local nr_cli = host.getNumContactsFromPeersAsServerTCPUDPNoTX()
  local ref_cli = host.getNumContactsFromPeersAsServerTCPRefused()
  -- Every unanswered or refused inbound conversation puts its client in
  -- one of these sets: with both empty there is nothing to look at.
  if nr_cli + ref_cli == 0 then
    return
  end
  local conv = host.getUnidirectionalTCPUDPFlowsStats().num_ingress + host.getRefusedTCPFlowsStats().num_ingress
  local p = host_info.params
  local w = p.window_ticks
  local st = host_info.state
  local growth = host_consts.growth
  -- A client in both sets (one port unanswered, another refused) counts
  -- twice: the sum is an upper bound of the distinct clients, kept because
  -- either count alone would miss a probe split between filtered and
  -- closed ports (see scan_detection). The message gives the two counts.
  local d_nr = growth(st, "nr_cli", nr_cli, w)
  local d_ref = growth(st, "ref_cli", ref_cli, w)
  local d_conv = growth(st, "conv", conv, w)
  local peers, conversations = p.peers, p.conversations
  local sampling = host.getSamplingInfo()
  local n, seen = sampling.rate, d_conv
  local suffix = ""
  if not sampling.exact then
    seen = d_conv / n
    peers = math.max(p.sampled_min_peers, math.ceil(peers / n))
    conversations = math.max(p.sampled_min_conversations, math.ceil(conversations / n))
    suffix = string.format(" (estimated, sampled 1-in-%d)", n)
  end
  if d_nr + d_ref >= peers or seen >= conversations then
    host.triggerAlert(p.value, string.format(
      "scan victim: %d no-reply + %d refused clients, %d conversations without reply or refused%s",
      d_nr, d_ref, d_conv, suffix))
  end
end

return scan_victim
