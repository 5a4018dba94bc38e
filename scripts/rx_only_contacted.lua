-- rx_only_contacted: a host that has never sent a packet (rx-only) was
-- contacted by at least params.peers distinct clients (since it was first
-- seen): an unused address that many peers try to reach (dark space, a dead
-- service, a sinkhole).
local host_consts = require("host_consts")

local rx_only_contacted = {}

function rx_only_contacted.check(host_info)
  if not host.is_rx_only() then
    return
  end
  local peers = host.getNumContactsFromPeersAsServerTCPUDPNoTX()
  local p = host_info.params
  if peers >= (p.peers or 16) then
    host.triggerAlert(p.value or host_consts.score.info, string.format(
      "rx-only host contacted by %d peers without ever answering", peers))
  end
end

return rx_only_contacted
