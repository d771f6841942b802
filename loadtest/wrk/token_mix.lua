-- A mix of valid, expired and forged tokens, to measure a proxy that rejects part of its
-- traffic.
--
--   TOKENS_DIR=tokens MIX=80,10,10 wrk -c32 -d30s -s loadtest/wrk/token_mix.lua URL
--
-- TOKENS_DIR is a folder written by bench-tokens (valid.txt, unique.txt, expired.txt,
-- forged.txt). MIX gives the percentages of valid, expired and forged requests (default
-- 80,10,10). Valid requests repeat one token, or use unique.txt in turn when VALID=unique.
-- The BENCH_JSON line adds `sent_valid`, `sent_expired`, `sent_forged`, and the responses
-- by class: `status_2xx`, `status_401` and `status_other`. A proxy that checks tokens
-- correctly returns 2xx exactly `sent_valid` times, give or take the requests still in
-- flight when the run stopped.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local folder = os.getenv("TOKENS_DIR") or error("set TOKENS_DIR to a folder written by bench-tokens")

local function parse_mix(text)
  local shares = {}
  for number in string.gmatch(text, "%d+") do
    shares[#shares + 1] = tonumber(number)
  end
  if #shares ~= 3 or shares[1] + shares[2] + shares[3] ~= 100 then
    error("MIX must be three percentages that add up to 100, such as 80,10,10; got " .. text)
  end
  return shares
end

local mix = parse_mix(os.getenv("MIX") or "80,10,10")
local pools = {}
local positions = { 1, 1, 1 }
local slot = 0
local headers = {}
sent_valid, sent_expired, sent_forged = 0, 0, 0
status_2xx, status_401, status_other = 0, 0, 0

setup = common.setup

function init(args)
  local valid_file = (os.getenv("VALID") == "unique") and "/unique.txt" or "/valid.txt"
  pools[1] = common.read_lines(folder .. valid_file)
  pools[2] = common.read_lines(folder .. "/expired.txt")
  pools[3] = common.read_lines(folder .. "/forged.txt")
  -- Threads start at different points of the 100-request pattern below.
  slot = thread_index * 37
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
end

-- Picks the class of the next request from a repeating 100-request pattern, so the shares
-- are exact over every 100 requests.
local function next_class()
  slot = (slot + 1) % 100
  if slot < mix[1] then
    return 1
  elseif slot < mix[1] + mix[2] then
    return 2
  end
  return 3
end

function request()
  local class = next_class()
  local pool = pools[class]
  local position = positions[class]
  if position > #pool then
    position = 1
  end
  positions[class] = position + 1
  if class == 1 then
    sent_valid = sent_valid + 1
  elseif class == 2 then
    sent_expired = sent_expired + 1
  else
    sent_forged = sent_forged + 1
  end
  headers["Authorization"] = "Bearer " .. pool[position]
  return wrk.format(nil, nil, headers)
end

function response(status, response_headers, body)
  if status >= 200 and status < 300 then
    status_2xx = status_2xx + 1
  elseif status == 401 then
    status_401 = status_401 + 1
  else
    status_other = status_other + 1
  end
end

done = common.make_done({
  "sent_valid", "sent_expired", "sent_forged", "status_2xx", "status_401", "status_other",
})
