// Drives node-flowdock against the sandbox as its README shows; prints one JSON report.
// Environment: FLOWDOCK_API_URL, FLOWDOCK_STREAM_URL (read by node-flowdock itself),
// SANDBOX_API_TOKEN, SANDBOX_FLOW_ID, SANDBOX_FLOW_TOKEN.
"use strict";
const Session = require("flowdock").Session;

const flowId = process.env.SANDBOX_FLOW_ID;
const report = {errors: []};

function newSession(...credentials) {
  const created = new Session(...credentials);
  created.on("error", (error) => report.errors.push(String(error)));
  return created;
}

const session = newSession(process.env.SANDBOX_API_TOKEN);

function callOn(target, method, ...args) {
  return new Promise((resolve, reject) => {
    target[method](...args, (error, body) => (error ? reject(error) : resolve(body)));
  });
}

function call(method, ...args) {
  return callOn(session, method, ...args);
}

// An integration's activity: the flow token in the body. Session sends its Basic
// Authorization header with it all the same, whether made with an API token or none.
function activity(title) {
  return {
    flow_token: process.env.SANDBOX_FLOW_TOKEN,
    event: "activity",
    author: {name: "node-flowdock"},
    title,
    external_thread_id: "node-flowdock:1",
    thread: {title: "Posted with a flow token", status: {value: "open", color: "green"}},
  };
}

function streamUntil(content) {
  return new Promise((resolve, reject) => {
    const stream = session.stream(flowId);
    const started = Date.now();
    let reconnects = 0;
    let connected = false;
    const timer = setTimeout(() => {
      reject(new Error(`no message within 10 s (connected: ${connected}, reconnects: ${reconnects})`));
    }, 10000);
    stream.on("reconnecting", () => { reconnects += 1; });
    stream.on("clientError", () => {});
    stream.on("connected", () => {
      if (connected) return;
      connected = true;
      call("message", flowId, content, ["stream"]).catch(reject);
    });
    stream.on("message", (message) => {
      if (message.content !== content) return;
      clearTimeout(timer);
      // Not stream.end(): on Node 20 it makes request 2.58 emit an "aborted" error after
      // node-flowdock removed its listeners, which crashes the process. Exiting ends it.
      resolve({seconds: (Date.now() - started) / 1000, reconnects, event: message.event});
    });
  });
}

(async () => {
  const flows = await call("flows");
  report.flows = flows.map((flow) => flow.id);
  const message = await call("message", flowId, "Hello from node-flowdock", ["node"]);
  report.message = message;
  report.threadMessage = await call("threadMessage", flowId, message.thread_id, "In the thread", []);
  report.comment = await call("comment", flowId, message.id, "A comment", ["cool"]);
  report.status = await call("status", flowId, "Testing the sandbox");
  report.stream = await streamUntil("Posted after connecting");
  report.integrationPost = await call("post", "/messages", activity("created item"));
  report.anonymousPost = await callOn(newSession(), "post", "/messages", activity("updated item"));
  process.stdout.write(JSON.stringify(report), () => process.exit(0));
})().catch((error) => {
  report.failure = String(error && error.stack || error);
  process.stdout.write(JSON.stringify(report), () => process.exit(1));
});
