-- dangerous_host: the host's score (sum of its engaged alerts, without this
-- check's own alert) reached params.score. Checks run in name order, so the
-- score includes this tick's alerts of checks named before this one and the
-- previous tick's alerts of the others.
local host_consts = require("host_consts")

local dangerous_host = {}

function dangerous_host.check(host_info)
  local score = host.score()
  if score == 0 then
    return
  end
  local p = host_info.params
  local st = host_info.state
  local others = score - (st.value or 0)
  local value = p.value or host_consts.score.error
  if others >= (p.score or 150) then
    st.value = value
    host.triggerAlert(value, string.format("dangerous host: score %d from other checks", others))
  else
    st.value = 0
  end
end

return dangerous_host
