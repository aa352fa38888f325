// Where a wasm module's code goes: function body bytes per crate (the first path segment
// of each function's demangled name, from the name section; build the module unstripped).
//
//   node module-size.mjs MODULE.wasm [TOP]
import fs from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 20);
const buf = fs.readFileSync(file);
let pos = 8;
const u32 = () => {
  let result = 0, shift = 0, byte;
  do { byte = buf[pos++]; result += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
  return result;
};
const name = () => { const len = u32(); const s = buf.toString('utf8', pos, pos + len); pos += len; return s; };

let importedFunctions = 0;
const bodySizes = [];
const names = new Map();
const sections = new Map();
while (pos < buf.length) {
  const id = buf[pos++];
  const size = u32();
  const end = pos + size;
  if (id === 0) {
    const section = name();
    sections.set(`custom:${section}`, size);
    if (section === 'name') {
      while (pos < end) {
        const sub = buf[pos++];
        const subSize = u32();
        const subEnd = pos + subSize;
        if (sub === 1) {
          const count = u32();
          for (let i = 0; i < count; i++) { const index = u32(); names.set(index, name()); }
        }
        pos = subEnd;
      }
    }
  } else {
    sections.set(['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code', 'data', 'datacount'][id] ?? `id${id}`, size);
    if (id === 2) {
      const count = u32();
      for (let i = 0; i < count; i++) {
        name(); name();
        const kind = buf[pos++];
        if (kind === 0) { u32(); importedFunctions++; }
        else if (kind === 1) { pos++; const flags = u32(); u32(); if (flags & 1) u32(); }
        else if (kind === 2) { const flags = u32(); u32(); if (flags & 1) u32(); }
        else if (kind === 3) { pos++; pos++; }
      }
    } else if (id === 10) {
      const count = u32();
      for (let i = 0; i < count; i++) { const s = u32(); bodySizes.push(s); pos += s; }
    }
  }
  pos = end;
}

// The crate of a legacy-mangled (_ZN<len>crate...) or v0 (_R...<len>crate) Rust symbol.
function crateOf(symbol) {
  const legacy = /^_ZN(\d+)/.exec(symbol);
  if (legacy) {
    const seg = symbol.substr(3 + legacy[1].length, Number(legacy[1]));
    if (!seg.startsWith('_$LT$')) return seg;
    // `<path::Type as crate::Trait>`: the first crate path named in the impl.
    const path = /([a-z_][a-z0-9_]*)\.\./.exec(seg);
    return path ? path[1] : '(other)';
  }
  const v0 = /^_R.*?C[s\w]*?_?(\d+)([a-z_][a-z0-9_]*)/.exec(symbol);
  if (v0) return v0[2];
  return '(other)';
}

const byCrate = new Map();
let total = 0;
bodySizes.forEach((size, i) => {
  const crate = crateOf(names.get(i + importedFunctions) ?? '');
  byCrate.set(crate, (byCrate.get(crate) ?? 0) + size);
  total += size;
});
const kib = (b) => (b / 1024).toFixed(1).padStart(7) + ' KiB';
console.log(`${file}: ${kib(buf.length)}; sections: ${[...sections].map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} KiB`).join(', ')}`);
console.log(`code: ${bodySizes.length} functions, ${kib(total)}`);
for (const [crate, size] of [...byCrate].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${kib(size)} ${(100 * size / total).toFixed(1).padStart(5)} %  ${crate}`);
}
