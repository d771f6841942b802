// Requests at a constant arrival rate, whatever the target's latency, so latency percentiles
// compare proxies at equal load. `loadtest/bench --fixed-rate-tool k6` runs it for the
// fixed_rate scenario (oha is the default there).
//
//   TARGET=http://127.0.0.1:9443/orders/bench TOKEN_FILE=tokens/valid.txt RATE=1000 \
//     DURATION=30s k6 run loadtest/k6/fixed_rate.js
//
// TOKEN_FILE's first line is sent as the bearer token on every request. SUMMARY_FILE, when
// set, receives the figures as JSON: requests, rps, p50_ms, p90_ms, p99_ms, max_ms, failed
// (responses that were not 2xx) and dropped (requests k6 could not start on time, which
// means the load generator, not the target, fell behind).
import http from "k6/http";

const target = __ENV.TARGET || "https://localhost:9443/orders/bench";
const token = open(__ENV.TOKEN_FILE).split("\n")[0].trim();
const rate = parseInt(__ENV.RATE || "500", 10);

export const options = {
  insecureSkipTLSVerify: true,
  discardResponseBodies: true,
  scenarios: {
    fixed_rate: {
      executor: "constant-arrival-rate",
      rate: rate,
      timeUnit: "1s",
      duration: __ENV.DURATION || "30s",
      // Enough virtual users to keep the rate through a latency of up to 50 ms.
      preAllocatedVUs: Math.max(10, Math.ceil(rate / 20)),
      maxVUs: Math.max(50, Math.ceil(rate / 5)),
    },
  },
};

const params = { headers: { Authorization: `Bearer ${token}` } };

export default function () {
  http.get(target, params);
}

function metric(data, name) {
  return data.metrics[name] ? data.metrics[name].values : {};
}

export function handleSummary(data) {
  const duration = metric(data, "http_req_duration");
  const requests = metric(data, "http_reqs");
  const failed = metric(data, "http_req_failed");
  const dropped = metric(data, "dropped_iterations");
  const figures = {
    requests: requests.count || 0,
    rps: requests.rate || 0,
    p50_ms: duration.med,
    p90_ms: duration["p(90)"],
    p99_ms: duration["p(99)"],
    max_ms: duration.max,
    failed: Math.round((failed.rate || 0) * (requests.count || 0)),
    dropped: dropped.count || 0,
  };
  const outputs = { stdout: JSON.stringify(figures) + "\n" };
  if (__ENV.SUMMARY_FILE) {
    outputs[__ENV.SUMMARY_FILE] = JSON.stringify(figures);
  }
  return outputs;
}
