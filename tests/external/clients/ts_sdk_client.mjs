// Drive a toolmux hub with the official TypeScript MCP SDK client (@modelcontextprotocol/sdk v1)
// and print one JSON summary of what the client saw on stdout.
//
//   node ts_sdk_client.mjs --url http://127.0.0.1:PORT/mcp/ --key KEY [options]
//   node ts_sdk_client.mjs --stdio '["/path/python", "-m", "aggregator", "stdio", "--config", "hub.yaml"]' [options]
//
// Options: --echo-tool NAME (default probe-echo), --slow-tool NAME (default probe-slow),
// --tag TAG (the cancelled call's tag; the probe child writes cancelled-TAG), --cwd DIR (stdio),
// --timeout-ms N (per request, default 20000), --wait-for-file PATH (after the abort, wait up to the
// timeout for PATH to appear while the session is still open: the probe child's cancellation marker,
// so that a cancellation seen only when the session closes does not count).
//
// Steps: connect, tools/list, call the echo tool, call the slow tool to completion collecting its
// progress notifications (onprogress), start a long slow call and abort it with an AbortSignal after
// its first progress notification, then call echo again on the same session. Any failure stops the
// run and is reported as {"ok": false, "stage": ..., "error": ...} with exit status 1.

import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { values: options } = parseArgs({
  options: {
    url: { type: "string" },
    key: { type: "string" },
    stdio: { type: "string" },
    cwd: { type: "string" },
    "echo-tool": { type: "string", default: "probe-echo" },
    "slow-tool": { type: "string", default: "probe-slow" },
    tag: { type: "string", default: "ts" },
    "timeout-ms": { type: "string", default: "20000" },
    "wait-for-file": { type: "string" },
  },
});

const timeout = Number(options["timeout-ms"]);
const summary = { ok: false, transport: options.url ? "http" : "stdio", stage: "start" };

function finish(code) {
  process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(code));
}

function describe(error) {
  return { name: error?.name ?? "Error", code: error?.code ?? null, message: String(error?.message ?? error) };
}

function makeTransport() {
  if (options.url) {
    const headers = options.key ? { Authorization: `Bearer ${options.key}` } : {};
    return new StreamableHTTPClientTransport(new URL(options.url), { requestInit: { headers } });
  }
  if (options.stdio) {
    const [command, ...args] = JSON.parse(options.stdio);
    // The hub's logs go to its stderr; keep them out of our stdout, which carries the summary.
    return new StdioClientTransport({ command, args, cwd: options.cwd, stderr: "inherit" });
  }
  throw new Error("give --url URL or --stdio '[command, ...args]'");
}

function textOf(result) {
  return (result.content ?? []).filter((block) => block.type === "text").map((block) => block.text).join("");
}

async function main() {
  const client = new Client({ name: "toolmux-ts-sdk-test", version: "1.0.0" });
  const transport = makeTransport();

  summary.stage = "connect";
  await client.connect(transport, { timeout });
  summary.server = client.getServerVersion();
  summary.protocolVersion = transport.protocolVersion ?? null;
  summary.sessionId = transport.sessionId ?? null;

  summary.stage = "tools/list";
  const listed = await client.listTools(undefined, { timeout });
  summary.tools = listed.tools.map((tool) => tool.name);

  summary.stage = "tools/call";
  const echoed = await client.callTool({ name: options["echo-tool"], arguments: { text: "hello from ts" } }, undefined, {
    timeout,
  });
  summary.echo = { text: textOf(echoed), structured: echoed.structuredContent ?? null, isError: !!echoed.isError };

  summary.stage = "progress";
  const progress = [];
  const slow = await client.callTool(
    { name: options["slow-tool"], arguments: { steps: 3, interval: 0.01 } },
    undefined,
    { timeout, onprogress: (p) => progress.push({ progress: p.progress, total: p.total ?? null, message: p.message ?? null }) },
  );
  summary.progress = { result: textOf(slow), isError: !!slow.isError, notifications: progress };

  summary.stage = "cancel";
  const controller = new AbortController();
  let firstProgress = null;
  const started = Date.now();
  const pending = client.callTool(
    { name: options["slow-tool"], arguments: { steps: 1000, interval: 0.05, tag: options.tag } },
    undefined,
    {
      timeout,
      signal: controller.signal,
      onprogress: (p) => {
        if (firstProgress === null) {
          firstProgress = p.progress;
          controller.abort(new Error("cancelled by the test client"));
        }
      },
    },
  );
  try {
    const result = await pending;
    summary.cancel = { rejected: false, result: textOf(result) };
  } catch (error) {
    summary.cancel = { rejected: true, error: describe(error), firstProgress, afterMs: Date.now() - started };
  }

  if (options["wait-for-file"]) {
    summary.stage = "wait-for-file";
    const waitStarted = Date.now();
    while (!existsSync(options["wait-for-file"]) && Date.now() - waitStarted < timeout) await sleep(20);
    summary.cancel.fileSeenWhileOpen = existsSync(options["wait-for-file"]);
    summary.cancel.fileWaitMs = Date.now() - waitStarted;
  }

  summary.stage = "after-cancel";
  const after = await client.callTool({ name: options["echo-tool"], arguments: { text: "after cancel" } }, undefined, {
    timeout,
  });
  summary.afterCancel = { text: textOf(after), isError: !!after.isError };

  summary.stage = "close";
  if (transport.terminateSession) await transport.terminateSession().catch(() => {});
  await client.close();
  summary.stage = "done";
  summary.ok = true;
}

main().then(
  () => finish(0),
  (error) => {
    summary.error = describe(error);
    finish(1);
  },
);
