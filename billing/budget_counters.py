"""The budget counters' two forms side by side: the Lua scripts Redis runs, and their
in-process twin with the same protocol (the embedded default, and Redis outages under the
``local`` policy, docs/decisions/0018). ``billing.budgets`` decides which one serves.
"""

from __future__ import annotations

import threading

from common.local_state import local_state_register

# --- The atomic step, in Lua -----------------------------------------------------------------

# KEYS: one counter per budget. ARGV[1] estimate, ARGV[2] TTL, then for each key a pair
# (hard limit or -1 for none, seed or -1 for "not known yet").
# Returns {1, value...} reserved; {0, index, value} rejected by KEYS[index];
# {-1, index...} counters missing and no seed given: seed them from the database.
_RESERVE_LUA = """
local estimate = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local values = {}
local missing = {-1}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if not value then
    local seed = tonumber(ARGV[2 + 2 * i])
    if seed < 0 then
      table.insert(missing, i)
    else
      redis.call('SET', KEYS[i], seed, 'EX', ttl)
      value = seed
    end
  end
  values[i] = tonumber(value)
end
if #missing > 1 then return missing end
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2 * i])
  if limit >= 0 and values[i] + estimate > limit then return {0, i, values[i]} end
end
local result = {1}
for i = 1, #KEYS do
  result[i + 1] = redis.call('INCRBY', KEYS[i], estimate)
  redis.call('EXPIRE', KEYS[i], ttl)
end
return result
"""

# Add ARGV[1] (may be negative) to each existing counter. A counter that vanished is
# left alone: its next seed from the database will include the settled cost.
_ADJUST_LUA = """
local result = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    result[i] = redis.call('INCRBY', KEYS[i], tonumber(ARGV[1]))
  else
    result[i] = -1
  end
end
return result
"""


class _MemoryCounters:
    """The embedded mode's counters: the same protocol as the Lua scripts, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}
        self.flags: set[str] = set()

    def reserve(self, keys, estimate, limits, seeds):
        with self.lock:
            missing = [
                index + 1
                for index, key in enumerate(keys)
                if key not in self.values and seeds[index] < 0
            ]
            if missing:
                return [-1, *missing]
            for index, key in enumerate(keys):
                self.values.setdefault(key, seeds[index])
            for index, key in enumerate(keys):
                if limits[index] >= 0 and self.values[key] + estimate > limits[index]:
                    return [0, index + 1, self.values[key]]
            for key in keys:
                self.values[key] += estimate
            return [1, *(self.values[key] for key in keys)]

    def adjust(self, keys, delta):
        with self.lock:
            result = []
            for key in keys:
                if key in self.values:
                    self.values[key] += delta
                    result.append(self.values[key])
                else:
                    result.append(-1)
            return result

    def flag_once(self, name: str) -> bool:
        with self.lock:
            if name in self.flags:
                return False
            self.flags.add(name)
            return True

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
            self.flags.clear()


memory_counters = _MemoryCounters()
local_state_register("budgets:counters", memory_counters.clear, redis_twin=True)


def redis_scripts(client):
    return client.register_script(_RESERVE_LUA), client.register_script(_ADJUST_LUA)


# The last value Redis gave this process for each counter (spent + reserved): what the local
# counters start from when Redis goes away while the database is away too.
last_seen: dict[str, int] = {}
local_state_register("budgets:last-seen", last_seen.clear, redis_twin=False)


def remember(keys: list[str], values) -> None:
    for key, value in zip(keys, values, strict=True):
        if int(value) >= 0:
            last_seen[key] = int(value)
