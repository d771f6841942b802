// A fresh valid token on every request, so the sidecar's verified-token cache never helps.
//
//   TOKEN_FILE=$PWD/tokens/unique.txt TARGET=https://localhost:9443/orders/ID \
//     k6 run loadtest/k6/unique_tokens.js
//
// TOKEN_FILE contains one token per line (bench-tokens' unique.txt), as an absolute path.
// Requests past the end of the file start over and hit the cache; the `reused` counter
// counts them. VUS (16) and DURATION (30s) size the run.
import http from "k6/http";
import { check } from "k6";
import { Counter } from "k6/metrics";
import { SharedArray } from "k6/data";
import exec from "k6/execution";

const tokens = new SharedArray("tokens", () =>
  open(__ENV.TOKEN_FILE).split("\n").filter((line) => line),
);
const target = __ENV.TARGET || "https://localhost:9443/orders/bench";
const reused = new Counter("reused");

export const options = {
  insecureSkipTLSVerify: true,
  vus: parseInt(__ENV.VUS || "16", 10),
  duration: __ENV.DURATION || "30s",
};

export default function () {
  const iteration = exec.scenario.iterationInTest;
  if (iteration >= tokens.length) {
    reused.add(1);
  }
  const response = http.get(target, {
    headers: { Authorization: `Bearer ${tokens[iteration % tokens.length]}` },
  });
  check(response, { "valid token gets 2xx": (r) => r.status >= 200 && r.status < 300 });
}
