-- Helpers shared by the wrk scripts in this folder, loaded with dofile.
--
-- Every script ends its run by printing one line, `BENCH_JSON {...}`, after wrk's own
-- summary: requests, duration_s, rps, p50_ms, p90_ms, p99_ms, max_ms, the error counts, and
-- any counters the script kept per thread. loadtest/bench parses that line.

local common = {}

local threads = {}

-- Reads a file into a list of its non-empty lines.
function common.read_lines(path)
  local file, err = io.open(path, "r")
  if not file then
    error("cannot open " .. path .. ": " .. tostring(err))
  end
  local lines = {}
  for line in file:lines() do
    if #line > 0 then
      lines[#lines + 1] = line
    end
  end
  file:close()
  if #lines == 0 then
    error(path .. " contains no tokens")
  end
  return lines
end

-- Returns the token in TOKEN, or the first line of TOKEN_FILE.
function common.token_from_env()
  local token = os.getenv("TOKEN")
  if token and #token > 0 then
    return token
  end
  local path = os.getenv("TOKEN_FILE")
  if path then
    return common.read_lines(path)[1]
  end
  error("set TOKEN to an access token, or TOKEN_FILE to a file whose first line is one")
end

-- Reads the whole file at `path`.
function common.read_file(path)
  local file, err = io.open(path, "r")
  if not file then
    error("cannot open " .. path .. ": " .. tostring(err))
  end
  local text = file:read("*a")
  file:close()
  return text
end

-- Numbers each wrk thread (0, 1, ...) and keeps it for the counters printed by done.
function common.setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

-- The number of wrk threads, which the scripts cannot see: WRK_THREADS, or 1.
function common.thread_count()
  return tonumber(os.getenv("WRK_THREADS") or "1")
end

-- Prints the BENCH_JSON line. `counters` names per-thread numeric globals to add up.
function common.make_done(counters)
  return function(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local errors = summary.errors
    local fields = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_s":%.6f', seconds),
      string.format('"rps":%.2f', summary.requests / seconds),
      string.format('"p50_ms":%.4f', latency:percentile(50) / 1000),
      string.format('"p90_ms":%.4f', latency:percentile(90) / 1000),
      string.format('"p99_ms":%.4f', latency:percentile(99) / 1000),
      string.format('"max_ms":%.4f', latency.max / 1000),
      string.format('"errors_connect":%d', errors.connect),
      string.format('"errors_read":%d', errors.read),
      string.format('"errors_write":%d', errors.write),
      string.format('"errors_timeout":%d', errors.timeout),
      string.format('"non_2xx":%d', errors.status),
    }
    for _, name in ipairs(counters or {}) do
      local total = 0
      for _, thread in ipairs(threads) do
        total = total + (tonumber(thread:get(name)) or 0)
      end
      fields[#fields + 1] = string.format('"%s":%d', name, total)
    end
    io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
  end
end

return common
