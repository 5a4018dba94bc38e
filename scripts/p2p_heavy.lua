-- p2p_heavy: heavy peer-to-peer (BitTorrent by default) traffic: bytes of the
-- configured nDPI protocols grown by at least bytes_per_run since the last
-- run (since the host was first seen on the first run). On ntopng, replace
-- host.l7(name) with (host.l7() or {})[name].
local host_consts = require("host_consts")

local p2p_heavy = {
  -- Params and their defaults: scripting.checks.p2p_heavy.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    protocols = { "BitTorrent" }, -- nDPI names (host_consts.p2p_protocols lists more)
    bytes_per_run = 100000000,    -- bytes of those protocols since the last run
    value = 30,                   -- alert value (warning)
  },
}

function p2p_heavy.check(host_info)
  local p = host_info.params
  local protocols = p.protocols
  local total = 0
  -- host.l7(name) is a flowcheck extension: only that protocol's table.
  for i = 1, #protocols do
    local s = host.l7(protocols[i])
    if s then
      total = total + s.bytes_sent + s.bytes_rcvd
    end
  end
  if total == 0 then
    return
  end
  local st = host_info.state
  local d = total - (st.bytes or 0)
  if d < 0 then
    d = total
  end
  st.bytes = total
  if d >= p.bytes_per_run then
    host.triggerAlert(p.value, string.format(
      "heavy P2P traffic: %d bytes since the last check", d))
  end
end

return p2p_heavy
