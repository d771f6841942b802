// A mix of valid, expired and forged tokens against one URL, checking that the sidecar lets
// exactly the valid ones through: 2xx for valid tokens, 401 for the others.
//
//   TOKENS_DIR=$PWD/tokens TARGET=https://localhost:9443/orders/ID k6 run loadtest/k6/token_mix.js
//
// TOKENS_DIR is a folder written by bench-tokens (valid.txt, unique.txt, expired.txt,
// forged.txt), given as an absolute path. MIX sets the percentages of valid, expired and
// forged requests (80,10,10). With VALID=unique each valid request sends the next token of
// unique.txt, a fresh token per request; otherwise it repeats valid.txt's token. VUS (16)
// and DURATION (30s) size the run.
import http from "k6/http";
import { check } from "k6";
import { SharedArray } from "k6/data";
import exec from "k6/execution";

const folder = __ENV.TOKENS_DIR;
if (!folder) {
  throw new Error("set TOKENS_DIR to the absolute path of a folder written by bench-tokens");
}
const target = __ENV.TARGET || "https://localhost:9443/orders/bench";
const mix = (__ENV.MIX || "80,10,10").split(",").map((share) => parseInt(share, 10));
if (mix.length !== 3 || mix[0] + mix[1] + mix[2] !== 100) {
  throw new Error(`MIX must be three percentages that add up to 100, got ${__ENV.MIX}`);
}

function lines(name) {
  return new SharedArray(name, () => open(`${folder}/${name}`).split("\n").filter((line) => line));
}

const valid = lines(__ENV.VALID === "unique" ? "unique.txt" : "valid.txt");
const expired = lines("expired.txt");
const forged = lines("forged.txt");

export const options = {
  insecureSkipTLSVerify: true,
  vus: parseInt(__ENV.VUS || "16", 10),
  duration: __ENV.DURATION || "30s",
  thresholds: { checks: ["rate==1.0"] },
};

export default function () {
  const iteration = exec.scenario.iterationInTest;
  const slot = iteration % 100;
  let kind;
  let token;
  if (slot < mix[0]) {
    kind = "valid";
    token = valid[iteration % valid.length];
  } else if (slot < mix[0] + mix[1]) {
    kind = "expired";
    token = expired[iteration % expired.length];
  } else {
    kind = "forged";
    token = forged[iteration % forged.length];
  }
  const response = http.get(target, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { token: kind },
  });
  if (kind === "valid") {
    check(response, { "valid token gets 2xx": (r) => r.status >= 200 && r.status < 300 });
  } else {
    check(response, { [`${kind} token gets 401`]: (r) => r.status === 401 });
  }
}
