-- dangerous_host: the host's score (sum of its engaged alerts, without this
-- check's own alert) reached params.score. Checks run in name order, so the
-- score includes this tick's alerts of checks named before this one and the
-- previous tick's alerts of the others.
local host_consts = require("host_consts")

local dangerous_host = {
  -- Params and their defaults: scripting.checks.dangerous_host.params
  -- overrides them, and a name not declared here stops the load.
  defaults = {
    score = 150, -- score of the other checks' engaged alerts
    value = 60,  -- alert value (error)
  },
}

function dangerous_host.check(host_info)
  local score = host.score()
  if score == 0 then
    return
  end
  local p = host_info.params
  local st = host_info.state
  local others = score - (st.value or 0)
  local value = p.value
  if others >= p.score then
    st.value = value
    host.triggerAlert(value, string.format("dangerous host: score %d from other checks", others))
  else
    st.value = 0
  end
end

return dangerous_host
