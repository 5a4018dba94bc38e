-- host_consts: constants and small helpers shared by the shipped host checks.
-- Load it with require("host_consts"); it is a module, not a check (it has no
-- check function).
local host_consts = {}

-- Alert values by severity band (alert.Severity): info 1-25, warning 26-50,
-- error 51-75, critical 76+.
host_consts.score = {
  info = 10,
  warning = 30,
  error = 60,
  critical = 80,
}

-- nDPI names of peer-to-peer file sharing protocols.
host_consts.p2p_protocols = { "BitTorrent", "eDonkey", "Gnutella", "Soulseek", "DirectConnect", "Xunlei" }

-- growth returns how much a monotonic counter grew over the last `ticks`
-- runs of the calling check on this host, keeping its history in `state`
-- (host_info.state) under `key`. Before `ticks` runs have been seen the base
-- is 0, i.e. the counter since the host was first seen; a counter that went
-- down (reset) counts from 0 again.
function host_consts.growth(state, key, value, ticks)
  -- The history is a plain array (its length is the number of runs seen, up
  -- to `ticks`): no hash part, so it costs a few words per counter and host.
  local hist = state[key]
  if hist == nil then
    hist = {}
    state[key] = hist
  end
  local n = #hist
  local base = 0
  if n >= ticks then
    base = hist[1]
  end
  if value < base then
    base = 0
  end
  -- Shift the window and record the current value.
  if n >= ticks then
    for i = 1, ticks - 1 do
      hist[i] = hist[i + 1]
    end
    hist[ticks] = value
  else
    hist[n + 1] = value
  end
  return value - base
end

-- param returns host_info.params[name], or default when it is not set.
function host_consts.param(host_info, name, default)
  local v = host_info.params[name]
  if v == nil then
    return default
  end
  return v
end

return host_consts
