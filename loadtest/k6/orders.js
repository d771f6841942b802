// The book's flow against the running demo: each virtual user places an order with
// POST /orders and reads it back with GET /orders/{id}, through the order sidecar.
//
//   k6 run loadtest/k6/orders.js
//
// setup() requests one access token from the STS with the book's password grant, so the
// run needs nothing else. BASE_URL (https://localhost:9443), STS_URL
// (https://localhost:8443), VUS (8) and DURATION (30s) change the defaults. The demo's
// certificates are self-signed, so TLS verification is off.
import http from "k6/http";
import { check, fail } from "k6";
import encoding from "k6/encoding";

const baseUrl = __ENV.BASE_URL || "https://localhost:9443";
const stsUrl = __ENV.STS_URL || "https://localhost:8443";

export const options = {
  insecureSkipTLSVerify: true,
  vus: parseInt(__ENV.VUS || "8", 10),
  duration: __ENV.DURATION || "30s",
  thresholds: { checks: ["rate>0.99"] },
};

const order = open("../wrk/order.json");

export function setup() {
  const credentials = encoding.b64encode("applicationid:applicationsecret");
  const response = http.post(
    `${stsUrl}/oauth/token`,
    "grant_type=password&username=peter&password=peter123&scope=foo",
    {
      headers: {
        Authorization: `Basic ${credentials}`,
        "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
      },
    },
  );
  if (response.status !== 200) {
    fail(`the token request to ${stsUrl} returned ${response.status}: ${response.body}`);
  }
  return { token: response.json("access_token") };
}

export default function (data) {
  const headers = { Authorization: `Bearer ${data.token}`, "Content-Type": "application/json" };
  const created = http.post(`${baseUrl}/orders`, order, { headers, tags: { name: "POST /orders" } });
  // The demo inventory is finite: once an item runs out, orders get 409 Conflict.
  check(created, { "POST /orders returns 201, or 409 when stock ran out": (r) => r.status === 201 || r.status === 409 });
  const id = created.status === 201 ? created.json("order_id") : null;
  if (!id) {
    return;
  }
  const read = http.get(`${baseUrl}/orders/${id}`, { headers, tags: { name: "GET /orders/{id}" } });
  check(read, { "GET /orders/{id} returns 200": (r) => r.status === 200 });
}
