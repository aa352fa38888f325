// Runs the built modelgate filter (.wasm) in node's V8 behind a minimal proxy-wasm host
// (ABI 0.2.1): one configuration, then the same request sequence Envoy makes per HTTP
// stream, in a loop. Prints microseconds per request; under `node --cpu-prof` V8 writes a
// profile whose wasm frames carry the module's function names (build it unstripped).
//
//   node filter-in-v8.mjs FILTER.wasm CONFIG.json TOKENS.txt hot|cold|none REQUESTS [STATUS]
//
// hot: the first token on every request; cold: each token once, in turn; none: no token.
// It also prints the VM's linear memory after configuration and after the requests, and
// fails when a request was answered other than STATUS (when given).
import fs from 'node:fs';
import { webcrypto } from 'node:crypto';

const [wasmPath, configPath, tokensPath, mode, requestsArg, expectedArg] = process.argv.slice(2);
const requests = Number(requestsArg ?? 10000);
const config = fs.readFileSync(configPath);
const tokens = fs.readFileSync(tokensPath, 'utf8').split('\n').filter((t) => t.length > 0);
const enc = new TextEncoder();
const dec = new TextDecoder();

let instance;
const mem = () => new DataView(instance.exports.memory.buffer);
const bytes = (ptr, len) => new Uint8Array(instance.exports.memory.buffer, ptr, len);
const str = (ptr, len) => dec.decode(bytes(ptr, len));
const OK = 0, NOT_FOUND = 1;

// Copies bytes into memory the module allocates, and writes the pointer and size where it asked.
function give(data, ptrPtr, sizePtr) {
  const ptr = data.length === 0 ? 0 : instance.exports.proxy_on_memory_allocate(data.length);
  if (data.length > 0) bytes(ptr, data.length).set(data);
  mem().setUint32(ptrPtr, ptr, true);
  mem().setUint32(sizePtr, data.length, true);
  return OK;
}

// Header maps by type: 0 request headers, 2 response headers.
const maps = { 0: [], 2: [] };
let localStatus = 0;

function serializePairs(pairs) {
  const encoded = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + encoded.length * 8;
  for (const [k, v] of encoded) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, encoded.length, true);
  let p = 4;
  for (const [k, v] of encoded) {
    view.setUint32(p, k.length, true);
    view.setUint32(p + 4, v.length, true);
    p += 8;
  }
  for (const [k, v] of encoded) {
    out.set(k, p); p += k.length + 1;
    out.set(v, p); p += v.length + 1;
  }
  return out;
}

const host = {
  proxy_log: () => OK,
  proxy_get_buffer_bytes: (type, start, max, ptrPtr, sizePtr) =>
    type === 7 ? give(config, ptrPtr, sizePtr) : NOT_FOUND,
  proxy_get_header_map_pairs: (type, ptrPtr, sizePtr) =>
    give(serializePairs(maps[type] ?? []), ptrPtr, sizePtr),
  proxy_get_header_map_value: (type, kp, ks, ptrPtr, sizePtr) => {
    const key = str(kp, ks);
    const found = (maps[type] ?? []).find(([k]) => k === key);
    return found ? give(enc.encode(found[1]), ptrPtr, sizePtr) : NOT_FOUND;
  },
  proxy_replace_header_map_value: (type, kp, ks, vp, vs) => {
    const key = str(kp, ks), value = str(vp, vs);
    const map = maps[type] ?? [];
    const i = map.findIndex(([k]) => k === key);
    if (i >= 0) map[i] = [key, value]; else map.push([key, value]);
    return OK;
  },
  proxy_add_header_map_value: (type, kp, ks, vp, vs) => { (maps[type] ?? []).push([str(kp, ks), str(vp, vs)]); return OK; },
  proxy_remove_header_map_value: (type, kp, ks) => {
    const key = str(kp, ks);
    if (maps[type]) maps[type] = maps[type].filter(([k]) => k !== key);
    return OK;
  },
  proxy_get_property: () => NOT_FOUND,
  proxy_get_current_time_nanoseconds: (ptr) => { mem().setBigUint64(ptr, BigInt(Date.now()) * 1000000n, true); return OK; },
  proxy_define_metric: (type, np, ns, idPtr) => { mem().setUint32(idPtr, ++metricIds, true); return OK; },
  proxy_increment_metric: () => OK,
  proxy_record_metric: () => OK,
  proxy_send_local_response: (status) => { localStatus = status; return OK; },
  proxy_set_effective_context: () => OK,
};
let metricIds = 0;

const wasi = {
  random_get: (ptr, len) => { webcrypto.getRandomValues(bytes(ptr, len)); return 0; },
  clock_time_get: (id, precision, ptr) => { mem().setBigUint64(ptr, BigInt(Date.now()) * 1000000n, true); return 0; },
  fd_write: (fd, iovs, iovsLen, nwrittenPtr) => {
    let total = 0;
    for (let i = 0; i < iovsLen; i++) {
      const p = mem().getUint32(iovs + i * 8, true), l = mem().getUint32(iovs + i * 8 + 4, true);
      process.stderr.write(str(p, l)); total += l;
    }
    mem().setUint32(nwrittenPtr, total, true);
    return 0;
  },
  environ_sizes_get: (c, s) => { mem().setUint32(c, 0, true); mem().setUint32(s, 0, true); return 0; },
  environ_get: () => 0,
  proc_exit: (code) => { throw new Error(`proc_exit(${code})`); },
};

// Any other import answers Ok and does nothing.
const stubbed = (table) => new Proxy(table, { get: (t, name) => t[name] ?? (() => OK) });
const module = new WebAssembly.Module(fs.readFileSync(wasmPath));
instance = new WebAssembly.Instance(module, { env: stubbed(host), wasi_snapshot_preview1: stubbed(wasi) });
const x = instance.exports;
x._initialize();
x.proxy_on_context_create(1, 0);
x.proxy_on_vm_start(1, 0);
if (!x.proxy_on_configure(1, config.length)) throw new Error('configuration refused');
const configuredBytes = x.memory.buffer.byteLength;

const path = '/seldon/bench/model-0/api/v1.0/predictions';
const body = '{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}';
let context = 2;
const statuses = new Map();
function oneRequest(i) {
  const token = mode === 'hot' ? tokens[0] : mode === 'cold' ? tokens[i % tokens.length] : null;
  maps[0] = [
    [':authority', '127.0.0.1:10000'], [':path', path], [':method', 'POST'], [':scheme', 'http'],
    ['user-agent', 'wrk'], ['content-type', 'application/json'], ['content-length', String(body.length)],
    ['x-forwarded-proto', 'http'], ['x-request-id', '5f0c7a8e-7c6a-4b8e-9d0a-0c1f2e3d4c5b'],
  ];
  if (token) maps[0].push(['authorization', `Bearer ${token}`]);
  maps[2] = [[':status', '200'], ['content-length', '12'], ['content-type', 'text/plain']];
  localStatus = 0;
  const id = context++;
  x.proxy_on_context_create(id, 1);
  if (x.proxy_on_request_headers(id, maps[0].length, 0) === 0) x.proxy_on_request_body(id, body.length, 1);
  x.proxy_on_response_headers(id, maps[2].length, 0);
  x.proxy_on_log(id);
  x.proxy_on_done(id);
  x.proxy_on_delete(id);
  const status = localStatus || 200;
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
}

const warmup = Math.min(2000, requests);
for (let i = 0; i < warmup; i++) oneRequest(i);
statuses.clear();
const start = process.hrtime.bigint();
for (let i = warmup; i < warmup + requests; i++) oneRequest(i);
const micros = Number(process.hrtime.bigint() - start) / 1000 / requests;
const mib = (b) => Number((b / 1048576).toFixed(1));
console.log(JSON.stringify({
  mode, requests, us_per_request: Number(micros.toFixed(2)), statuses: Object.fromEntries(statuses),
  // The VM's linear memory (it never shrinks): after on_configure, and after the requests.
  linear_memory_mib: { configured: mib(configuredBytes), after_requests: mib(x.memory.buffer.byteLength) },
}));
if (expectedArg !== undefined && (statuses.size !== 1 || !statuses.has(Number(expectedArg)))) {
  console.error(`expected every request to be answered ${expectedArg}`);
  process.exit(1);
}
