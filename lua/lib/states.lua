-- lib/states.lua: GENERATED from kueatomic/states.py by kueatomic.states.lua_table()
-- (tests/test_script_headers.py checks it is current). Do not edit by hand.

local STATES = { inactive = true, active = true, complete = true, failed = true, delayed = true }
local NO_STATE = 'none'
local DATA_FORMAT = 1
-- The states a job must be in for the named script to move it.
local function moves_from(script)
  if script == 'cancel_job' then return { inactive = true, delayed = true, active = true }
  elseif script == 'clean_jobs' then return { inactive = true, delayed = true, complete = true, failed = true }
  elseif script == 'retry_jobs' then return { failed = true }
  elseif script == 'activate_jobs' then return { inactive = true }
  elseif script == 'complete_jobs' then return { active = true }
  elseif script == 'fail_jobs' then return { active = true }
  elseif script == 'renew_leases' then return { active = true }
  elseif script == 'promote_delayed_jobs' then return { delayed = true }
  elseif script == 'recover_jobs' then return { active = true }
  elseif script == 'reclaim_jobs' then return { active = true }
  elseif script == 'release_jobs' then return { active = true }
  end
  return {}
end
-- set_job_state: the states a job in `state` (or NO_STATE) may be moved to by hand.
local function manual_moves(state)
  if state == 'inactive' then return { inactive = true, active = true, complete = true, failed = true, delayed = true }
  elseif state == 'active' then return { inactive = true, complete = true, failed = true, delayed = true }
  elseif state == 'complete' then return { inactive = true, active = true, complete = true, failed = true, delayed = true }
  elseif state == 'failed' then return { inactive = true, active = true, complete = true, failed = true, delayed = true }
  elseif state == 'delayed' then return { inactive = true, active = true, complete = true, failed = true, delayed = true }
  elseif state == 'none' then return { inactive = true, active = true, complete = true, failed = true, delayed = true }
  end
  return {}
end
