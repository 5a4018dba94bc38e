-- blacklisted_host: a host listed in a configured blacklist is active: it
-- exchanged traffic since the last run (or this is the first run). The alert
-- is released after a run without traffic.
local host_consts = require("host_consts")

local blacklisted_host = {
  -- Params and their defaults: scripting.checks.blacklisted_host.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    value = 90, -- alert value (critical)
  },
}

function blacklisted_host.check(host_info)
  if not host.is_blacklisted() then
    return
  end
  local b = host.bytes()
  local st = host_info.state
  local prev = st.bytes
  st.bytes = b
  if prev == nil or b > prev then
    local p = host_info.params
    host.triggerAlert(p.value, string.format(
      "blacklisted host %s active: %d bytes in total", host.ip(), b))
  end
end

return blacklisted_host
