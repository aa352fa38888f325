// Summarizes a V8 .cpuprofile of filter-in-v8.mjs: where the filter's own (wasm) time
// goes, by function, self and inclusive, as shares of the wasm samples. The JavaScript
// host stand-in's time is reported apart: Envoy's C++ host is another cost.
//
//   node summarize.mjs PROFILE.cpuprofile [TOP] [PATTERN...]
import fs from 'node:fs';

const [file, topArg, ...patterns] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Legacy Rust mangling (_ZN<len><ident>...17h<hash>E); v0 names (_R...) are left as they are.
function demangle(name) {
  const m = /^_ZN(.*)E$/.exec(name);
  if (!m) return name;
  const parts = [];
  let rest = m[1];
  while (rest.length > 0) {
    const len = /^(\d+)/.exec(rest);
    if (!len) break;
    const n = Number(len[1]);
    parts.push(rest.slice(len[1].length, len[1].length + n));
    rest = rest.slice(len[1].length + n);
  }
  if (/^h[0-9a-f]{16}$/.test(parts[parts.length - 1] ?? '')) parts.pop();
  const subs = { '$LT$': '<', '$GT$': '>', '$u20$': ' ', '$RF$': '&', '$LP$': '(', '$RP$': ')', '$C$': ',', '$BP$': '*', '$u7b$': '{', '$u7d$': '}', '$u27$': "'", '$u5b$': '[', '$u5d$': ']', '$u3b$': ';', '$u21$': '!' };
  return parts
    .map((p) => p.replace(/\$[A-Za-z0-9]+\$/g, (s) => subs[s] ?? s).replace(/\.\./g, '::').replace(/^_\$/, '$'))
    .join('::');
}

const isWasm = (n) => n.callFrame.url.startsWith('wasm://');
const isJs = (n) => !isWasm(n) && !n.callFrame.functionName.startsWith('(');
const name = (n) => demangle(n.callFrame.functionName || '(anonymous)');

let wasm = 0, js = 0, other = 0;
const self = new Map();
const inclusive = new Map();
for (const id of profile.samples) {
  const node = byId.get(id);
  if (!isWasm(node)) { if (isJs(node)) js++; else other++; continue; }
  wasm++;
  self.set(name(node), (self.get(name(node)) ?? 0) + 1);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (!isWasm(n)) continue;
    const fname = name(n);
    if (!seen.has(fname)) { seen.add(fname); inclusive.set(fname, (inclusive.get(fname) ?? 0) + 1); }
  }
}
const total = profile.samples.length;
const pct = (v, of) => (100 * v / of).toFixed(1).padStart(5) + ' %';
console.log(`samples: ${total}; in the wasm module ${pct(wasm, total)}, in the JavaScript host stand-in and node ${pct(js, total)}, other (GC, idle) ${pct(other, total)}`);
console.log('\nself time, share of the wasm samples');
for (const [fname, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v, wasm)}  ${fname}`);
if (patterns.length) {
  console.log('\ninclusive time, share of the wasm samples');
  for (const p of patterns) {
    const re = new RegExp(p);
    const hits = [...inclusive].filter(([n]) => re.test(n)).sort((a, b) => b[1] - a[1]).slice(0, 4);
    for (const [fname, v] of hits) console.log(`${pct(v, wasm)}  ${fname}`);
  }
}
