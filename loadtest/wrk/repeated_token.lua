-- The same valid token on every request (the verified-token cache's best case).
--
--   TOKEN=... wrk -c32 -d30s -s loadtest/wrk/repeated_token.lua https://localhost:9443/orders/ID
--
-- TOKEN is the access token, or TOKEN_FILE a file whose first line is one. METHOD (GET by
-- default) and BODY_FILE (a JSON body) choose the request. The header is fixed, so wrk
-- builds the request once and the load generator costs little.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

wrk.method = os.getenv("METHOD") or "GET"
wrk.headers["Authorization"] = "Bearer " .. common.token_from_env()
local body_file = os.getenv("BODY_FILE")
if body_file then
  wrk.body = common.read_file(body_file)
  wrk.headers["Content-Type"] = "application/json"
end

setup = common.setup
done = common.make_done()
