-- A different valid token on every request (every verification is a cache miss).
--
--   TOKEN_FILE=tokens/unique.txt wrk -t1 -c32 -d10s -s loadtest/wrk/unique_tokens.lua URL
--
-- TOKEN_FILE contains one token per line, as bench-tokens writes unique.txt. Thread k of
-- WRK_THREADS (set it to wrk's -t, default 1) sends tokens k, k+n, k+2n, ..., so threads never
-- share a token. A thread that reaches the end of the file starts over; the BENCH_JSON line
-- counts those requests as `reused`, and a run with reused > 0 needs a longer file.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local path = os.getenv("TOKEN_FILE") or error("set TOKEN_FILE to a file of tokens, one per line")
local tokens
local position
local step
local wrapped = false
local headers = {}
reused = 0

setup = common.setup

function init(args)
  tokens = common.read_lines(path)
  step = common.thread_count()
  position = thread_index + 1
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
end

function request()
  if position > #tokens then
    position = thread_index + 1
    wrapped = true
  end
  if wrapped then
    reused = reused + 1
  end
  headers["Authorization"] = "Bearer " .. tokens[position]
  position = position + step
  return wrk.format(nil, nil, headers)
end

done = common.make_done({ "reused" })
