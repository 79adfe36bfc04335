-- lua5.4 workload for tests/test_programs.py: tables, string building, sort, gsub; deterministic output
-- (our own LCG; tables are only ever walked in sorted key order).
local x = 42
local function rnd() x = (x * 1103515245 + 12345) % 2147483648; return x end

local h = {}
local keep = {}
for round = 1, 40 do
  -- tables as hashes: insert, append, delete
  for i = 1, 3000 do
    local k = "key" .. (rnd() % 20000)
    h[k] = (h[k] or "") .. string.rep(string.char(97 + rnd() % 26), 1 + rnd() % 20)
  end
  local ks = {}
  for k in pairs(h) do ks[#ks + 1] = k end
  table.sort(ks)
  local nkeys = 0
  for _, k in ipairs(ks) do
    if #h[k] > 150 then h[k] = nil else nkeys = nkeys + 1 end
  end
  -- string building: table.concat, format, gsub
  local parts = {}
  for i = 1, 2000 do parts[i] = string.format("%08x", rnd()) end
  local s = table.concat(parts, ":")
  local t, n = s:gsub("([a-f]+)", function(m) return m:upper() .. #m end)
  if round % 3 == 0 then keep[#keep + 1] = t end
  if #keep > 6 then table.remove(keep, 1) end
  -- sort: numbers, strings, by a comparator
  local nums = {}
  for i = 1, 5000 do nums[i] = rnd() % 1000000 end
  table.sort(nums)
  local words = {}
  for i = 1, 2000 do
    local w = {}
    for j = 1, 3 + rnd() % 9 do w[j] = string.char(97 + rnd() % 26) end
    words[i] = table.concat(w)
  end
  table.sort(words)
  local bylen = {}
  for i, w in ipairs(words) do bylen[i] = w end
  table.sort(bylen, function(a, b) if #a ~= #b then return #a < #b end return a < b end)
  -- nested tables, then dropped
  local tree = {}
  for i = 1, 1000 do
    local l = {}
    for j = 1, i % 50 do l[j] = j end
    tree[i] = { n = i, list = l }
  end
  local sum = 0
  for i = 1, #tree do sum = sum + #tree[i].list end
  print(string.format("round %d: keys=%d t=%d n=%d median=%d first=%s last=%s bylen=%s sum=%d",
    round, nkeys, #t, n, nums[2500], words[1], words[#words], bylen[#bylen], sum))
  if round % 10 == 0 then collectgarbage() end
end
local ks, total = {}, 0
for k, v in pairs(h) do ks[#ks + 1] = k; total = total + #v end
table.sort(ks)
local lens = {}
for i, v in ipairs(keep) do lens[i] = #v end
print("final keys=" .. #ks .. " total=" .. total .. " keep=" .. table.concat(lens, ","))
local sample = {}
for i = 1, 10 do sample[i] = ks[i] .. "=" .. #h[ks[i]] end
print("sample=" .. table.concat(sample, ","))
