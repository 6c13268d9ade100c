-- Detection state shared by every worker (incidents/pipeline/shared_state.py).
--
-- ARGV: prefix, max keys per rule table, max values per remembered scope, memo TTL (s),
-- mode ("checks" or "ops"), then the JSON of the checks or operations.
--
-- The same bounded tables as BoundedState, in Redis, answered atomically: the whole batch
-- runs as one script, so two workers' batches never interleave. Per table (kind, rule):
--   <P>:t:<kind>:<rule>:lru     zset key -> touch sequence (the stalest has the lowest)
--   <P>:t:<kind>:<rule>:until   hash key -> event time until which the entry matters
--   <P>:t:<kind>:<rule>:meta    hash newest / evictions / expired
-- and the entries:
--   <P>:n:<rule>:<key>          hash bucket -> lines counted in it
--   <P>:l:<rule>:<key>          zset line id -> event time (a line counts once)
--   <P>:c:<rule>                hash claim key -> event time of the last claim
--   <P>:s:<rule>:<scope>        hash value -> event time last seen
--   <P>:o:<rule>:<scope>        zset value -> touch sequence
--   <P>:m:<raw log>             hash line number -> the verdicts given for that line
-- Keys are built here from the arguments: a single Redis, not a cluster.

local P = ARGV[1]
local MAX_KEYS = tonumber(ARGV[2])
local MAX_VALUES = tonumber(ARGV[3])
local MEMO_TTL = tonumber(ARGV[4])
local MODE = ARGV[5]
local items = cjson.decode(ARGV[6])

local function fmt(x)
  return string.format('%.17g', x)
end

-- Touch sequence: a block of numbers reserved for this batch, increasing across batches.
local seq = redis.call('INCRBY', P .. ':seq', 4 * #items + 4) - (4 * #items + 4)
local function next_seq()
  seq = seq + 1
  return seq
end

local meta = {}  -- table name -> {newest, evictions, expired} (written back at the end)
local function table_of(kind, rule)
  local name = P .. ':t:' .. kind .. ':' .. rule
  local m = meta[name]
  if m == nil then
    local got = redis.call('HMGET', name .. ':meta', 'newest')
    m = {newest = tonumber(got[1]) or -math.huge, evictions = 0, expired = 0, dirty = false,
         kind = kind, rule = rule}
    meta[name] = m
  end
  return name, m
end

local function drop_entry(kind, rule, key)
  if kind == 'n' then
    redis.call('DEL', P .. ':n:' .. rule .. ':' .. key, P .. ':l:' .. rule .. ':' .. key)
  elseif kind == 'c' then
    redis.call('HDEL', P .. ':c:' .. rule, key)
  else
    redis.call('DEL', P .. ':s:' .. rule .. ':' .. key, P .. ':o:' .. rule .. ':' .. key)
  end
end

-- The entry's "until" if present (moved to the fresh end), else nil.
local function touch(name, m, key, at)
  if at > m.newest then
    m.newest = at
    m.dirty = true
  end
  local until_at = redis.call('HGET', name .. ':until', key)
  if until_at then
    redis.call('ZADD', name .. ':lru', next_seq(), key)
    return tonumber(until_at)
  end
  return nil
end

local function set_until(name, key, until_at)
  redis.call('HSET', name .. ':until', key, fmt(until_at))
end

-- A new entry; a full table evicts its stalest, counted as expired when past its time.
local function insert(name, m, key, until_at)
  redis.call('ZADD', name .. ':lru', next_seq(), key)
  set_until(name, key, until_at)
  while redis.call('ZCARD', name .. ':lru') > MAX_KEYS do
    local popped = redis.call('ZPOPMIN', name .. ':lru')
    local stalest = popped[1]
    local stalest_until = tonumber(redis.call('HGET', name .. ':until', stalest))
    redis.call('HDEL', name .. ':until', stalest)
    drop_entry(m.kind, m.rule, stalest)
    if stalest_until ~= nil and stalest_until < m.newest then
      m.expired = m.expired + 1
    else
      m.evictions = m.evictions + 1
    end
  end
end

local function bucketing(at, window)
  local bucket = math.max(1, math.floor(window / 20))
  local buckets = math.max(1, math.floor(math.floor(window) / bucket))
  return bucket, buckets, math.floor(at / bucket)
end

local function count(key, at, window, rule, line)
  local name, m = table_of('n', rule)
  local until_at = touch(name, m, key, at)
  if until_at == nil then
    until_at = at + window
    insert(name, m, key, until_at)
  elseif at + window > until_at then
    until_at = at + window
    set_until(name, key, until_at)
  end
  local bucket, buckets, index = bucketing(at, window)
  local counts = P .. ':n:' .. rule .. ':' .. key
  local seen = P .. ':l:' .. rule .. ':' .. key
  -- A line counts once: the second time its id is already in the window's lines.
  if line == nil or redis.call('ZADD', seen, fmt(at), line) == 1 then
    redis.call('HINCRBY', counts, index, 1)
  end
  local held = redis.call('HGETALL', counts)
  if #held / 2 > buckets then
    -- Buckets older than the window of the newest line can never count again for lines
    -- in order (as BoundedState: only once more buckets than a window are held).
    local newest = math.floor((until_at - window) / bucket)
    for i = 1, #held, 2 do
      if tonumber(held[i]) <= newest - buckets then
        redis.call('HDEL', counts, held[i])
        held[i + 1] = '0'
      end
    end
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. fmt((newest - buckets + 1) * bucket))
  end
  local total = 0
  for i = 1, #held, 2 do
    local b = tonumber(held[i])
    if b >= index - buckets + 1 and b <= index then
      total = total + tonumber(held[i + 1])
    end
  end
  return total
end

local function peek(key, at, window, rule)
  local bucket, buckets, index = bucketing(at, window)
  local held = redis.call('HGETALL', P .. ':n:' .. rule .. ':' .. key)
  local total = 0
  for i = 1, #held, 2 do
    local b = tonumber(held[i])
    if b > index - buckets and b <= index then
      total = total + tonumber(held[i + 1])
    end
  end
  return total
end

local function claim(key, at, hold, rule, memory)
  local name, m = table_of('c', rule)
  local until_at = touch(name, m, key, at)
  local data = P .. ':c:' .. rule
  if until_at ~= nil and hold > 0 then
    local last = tonumber(redis.call('HGET', data, key))
    if last ~= nil and math.abs(at - last) < hold then
      return false
    end
  end
  local keep = math.max(hold, memory)
  if until_at == nil then
    insert(name, m, key, at + keep)
  elseif at + keep > until_at then
    set_until(name, key, at + keep)
  end
  redis.call('HSET', data, key, fmt(at))
  return true
end

local function last_claimed(key, rule)
  return tonumber(redis.call('HGET', P .. ':c:' .. rule, key))
end

local function remember(scope, value, ttl, rule, at)
  local name, m = table_of('s', rule)
  local values = P .. ':s:' .. rule .. ':' .. scope
  local order = P .. ':o:' .. rule .. ':' .. scope
  local until_at = touch(name, m, scope, at)
  if until_at ~= nil and at > until_at then
    redis.call('ZREM', name .. ':lru', scope)
    redis.call('HDEL', name .. ':until', scope)
    redis.call('DEL', values, order)
    m.expired = m.expired + 1
    until_at = nil
  end
  if until_at == nil then
    insert(name, m, scope, at + ttl)
    redis.call('HSET', values, value, fmt(at))
    redis.call('ZADD', order, next_seq(), value)
    return false, true
  end
  if at + ttl > until_at then
    set_until(name, scope, at + ttl)
  end
  local seen = tonumber(redis.call('HGET', values, value))
  local value_new = seen == nil or at - seen > ttl
  redis.call('HSET', values, value, fmt(at))
  redis.call('ZADD', order, next_seq(), value)
  while redis.call('ZCARD', order) > MAX_VALUES do
    local popped = redis.call('ZPOPMIN', order)
    redis.call('HDEL', values, popped[1])
  end
  return true, value_new
end

-- One check (see Check in state.py): {rule, at, claim key, hold, memory, first_seen,
-- preceded, threshold, line, distinct, sequence}; the verdict: {fired 0/1, count or -1,
-- preceded index or -1, its claim's time as text or ""}.
local function given(value)
  return value ~= nil and value ~= cjson.null
end

local function evaluate(check)
  local rule, at = check[1], check[2]
  local first_seen, preceded, threshold = check[6], check[7], check[8]
  local distinct, sequence = check[10], check[11]
  if first_seen ~= cjson.null then
    local known, new = remember(first_seen[1], first_seen[2], first_seen[3], rule, at)
    if not (known and new) then
      return {0, -1, -1, ''}
    end
  end
  local p_index, p_at = -1, ''
  if preceded ~= cjson.null then
    for i, item in ipairs(preceded) do
      local fired_at = last_claimed('fired:' .. item[2], item[1])
      if fired_at ~= nil and at - fired_at >= 0 and at - fired_at <= item[3] then
        p_index, p_at = i - 1, fmt(fired_at)
        break
      end
    end
    if p_index < 0 then
      return {0, -1, -1, ''}
    end
  end
  if given(distinct) and not claim(distinct[1], at, distinct[2], rule, distinct[2]) then
    return {0, -1, -1, ''}
  end
  local n = -1
  if threshold ~= cjson.null then
    local line = check[9]
    if line == cjson.null then
      line = nil
    end
    n = count(threshold[1], at, threshold[2], rule, line)
    if n < threshold[3] or (threshold[4] == true and n ~= threshold[3]) then
      return {0, -1, -1, ''}
    end
  end
  if given(sequence) then
    -- Sigma temporal: this rule matched now; did every member match within the span?
    claim(sequence[1], at, 0, rule, sequence[3])
    local previous = nil
    for _, member in ipairs(sequence[2]) do
      local seen = last_claimed(member, rule)
      if seen == nil or at - seen < 0 or at - seen > sequence[3] then
        return {0, -1, -1, ''}
      end
      if sequence[4] and previous ~= nil and seen < previous then
        return {0, -1, -1, ''}
      end
      previous = seen
    end
  end
  if not claim(check[3], at, check[4], rule, check[5]) then
    return {0, -1, -1, ''}
  end
  return {1, n, p_index, p_at}
end

local results = {}
if MODE == 'checks' then
  -- Items: {memo key or "", memo field, check}. A line answered before (its chunk
  -- processed again after a crash) gets the same verdicts, and changes nothing.
  local memos = {}   -- memo key .. field -> {verdicts, next position}
  local written = {} -- memo key .. field -> {memo key, field, verdicts}
  local order = {}
  for i, item in ipairs(items) do
    local memo_key, field = item[1], item[2]
    local verdict
    if memo_key ~= '' then
      local id = memo_key .. '\0' .. field
      local memo = memos[id]
      if memo == nil then
        local stored = redis.call('HGET', P .. ':m:' .. memo_key, field)
        memo = {stored and cjson.decode(stored) or nil, 1}
        memos[id] = memo
      end
      if memo[1] ~= nil then
        -- Answered before: the same verdicts in the same order (none past them).
        verdict = memo[1][memo[2]] or {0, -1, -1, ''}
        memo[2] = memo[2] + 1
      else
        verdict = evaluate(item[3])
        local w = written[id]
        if w == nil then
          w = {memo_key, field, {}}
          written[id] = w
          table.insert(order, id)
        end
        table.insert(w[3], verdict)
      end
    else
      verdict = evaluate(item[3])
    end
    results[i] = verdict
  end
  local expire = {}
  for _, id in ipairs(order) do
    local w = written[id]
    redis.call('HSET', P .. ':m:' .. w[1], w[2], cjson.encode(w[3]))
    expire[w[1]] = true
  end
  for memo_key, _ in pairs(expire) do
    redis.call('EXPIRE', P .. ':m:' .. memo_key, MEMO_TTL)
  end
else
  -- Operations one by one (Sigma correlations, tests): {name, args...}.
  for i, op in ipairs(items) do
    local name = op[1]
    if name == 'count' then
      results[i] = count(op[2], op[3], op[4], op[5], nil)
    elseif name == 'peek' then
      results[i] = peek(op[2], op[3], op[4], op[5])
    elseif name == 'claim' then
      results[i] = claim(op[2], op[3], op[4], op[5], op[6]) and 1 or 0
    elseif name == 'last_claimed' then
      local at = last_claimed(op[2], op[3])
      results[i] = at and fmt(at) or ''
    elseif name == 'remember' then
      local known, new = remember(op[2], op[3], op[4], op[5], op[6])
      results[i] = {known and 1 or 0, new and 1 or 0}
    end
  end
end

for name, m in pairs(meta) do
  if m.dirty or m.evictions > 0 or m.expired > 0 then
    redis.call('HSET', name .. ':meta', 'newest', fmt(m.newest))
    if m.evictions > 0 then
      redis.call('HINCRBY', name .. ':meta', 'evictions', m.evictions)
    end
    if m.expired > 0 then
      redis.call('HINCRBY', name .. ':meta', 'expired', m.expired)
    end
    redis.call('SADD', P .. ':tables', cjson.encode({m.kind, m.rule}))
  end
end

return cjson.encode(results)
