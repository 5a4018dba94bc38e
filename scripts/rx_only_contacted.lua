-- rx_only_contacted: a host that has never sent a packet (rx-only) was
-- contacted by at least params.peers distinct clients (since it was first
-- seen): an unused address that many peers try to reach (dark space, a dead
-- service, a sinkhole).
local host_consts = require("host_consts")

local rx_only_contacted = {
  -- Params and their defaults: scripting.checks.rx_only_contacted.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    peers = 16, -- distinct clients since the host was first seen
    value = 25, -- alert value (info)
  },
}

function rx_only_contacted.check(host_info)
  if not host.is_rx_only() then
    return
  end
  local peers = host.getNumContactsFromPeersAsServerTCPUDPNoTX()
  local p = host_info.params
  if peers >= p.peers then
    host.triggerAlert(p.value, string.format(
      "rx-only host contacted by %d peers without ever answering", peers))
  end
end

return rx_only_contacted
