-- large_transfer: the host sent and received at least bytes_per_run bytes
-- since the last run of this check (since it was first seen, on the first
-- run). The previous byte count is kept in host_info.state.
local host_consts = require("host_consts")

local large_transfer = {
  -- Params and their defaults: scripting.checks.large_transfer.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    bytes_per_run = 1000000000, -- bytes sent+received since the last run
    value = 20,                 -- alert value (info)
  },
}

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
  if d >= p.bytes_per_run then
    host.triggerAlert(p.value, string.format(
      "large transfer: %d bytes since the last check (sent %d, received %d in total)",
      d, host.bytes_sent(), host.bytes_rcvd()))
  end
end

return large_transfer
