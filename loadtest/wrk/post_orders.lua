-- POST /orders with the book's order, one valid token on every request. Each request places
-- a real order, so against the demo it also reserves inventory through both sidecars.
--
--   TOKEN=... wrk -c8 -d30s -s loadtest/wrk/post_orders.lua https://localhost:9443/orders
--
-- BODY_FILE replaces the order in order.json beside this script.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. common.token_from_env()
wrk.headers["Content-Type"] = "application/json"
wrk.body = common.read_file(os.getenv("BODY_FILE") or (dir .. "order.json"))

setup = common.setup
done = common.make_done()
