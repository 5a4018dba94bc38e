-- large_transfer: the host sent and received at least bytes_per_run bytes
-- since the last run of this check (since it was first seen, on the first
-- run). The previous byte count is kept in host_info.state.
local host_consts = require("host_consts")

local large_transfer = {}

function large_transfer.check(host_info)
  local b = host.bytes()
  local st = host_info.state
  local prev = st.bytes or 0
  st.bytes = b
  local d = b - prev
  if d < 0 then
    d = b
  end
  local p = host_info.params
  if d >= (p.bytes_per_run or 1e9) then
    host.triggerAlert(p.value or host_consts.score.info, string.format(
      "large transfer: %d bytes since the last check (sent %d, received %d in total)",
      d, host.bytes_sent(), host.bytes_rcvd()))
  end
end

return large_transfer
