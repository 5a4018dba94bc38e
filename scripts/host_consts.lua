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
--
-- The history is kept flat, in number fields of state named key.."_1" (the
-- value one run ago) to key.."_"..ticks, and a value of 0 is not stored: a
-- missing value and 0 give the same base, so a counter that stayed at 0
-- costs nothing, and plain numbers keep the state compact (a nested table
-- would make it a live Lua table of ~1 KB per host, see docs/lua-api.md).
local hist_names = {}

function host_consts.growth(state, key, value, ticks)
  if ticks < 1 then
    ticks = 1
  end
  local names = hist_names[key]
  if names == nil or #names < ticks then
    names = names or {}
    for k = #names + 1, ticks do
      names[k] = key .. "_" .. k
    end
    hist_names[key] = names
  end
  local old = state[key]
  -- (type() allocates in gopher-lua: test for nil first.)
  if old ~= nil and type(old) == "table" then
    -- History of an earlier version of this function (an array, the
    -- latest value last): move it to the fields.
    local n = #old
    for k = 1, ticks do
      local x = old[n - k + 1]
      if x == 0 then
        x = nil
      end
      state[names[k]] = x
    end
    state[key] = nil
  end
  local base = state[names[ticks]] or 0
  if value < base then
    base = 0
  end
  -- Shift the window and record the current value.
  for k = ticks, 2, -1 do
    state[names[k]] = state[names[k - 1]]
  end
  if value == 0 then
    state[names[1]] = nil
  else
    state[names[1]] = value
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
