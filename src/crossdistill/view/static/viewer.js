// crossdistill part viewer: the object coloured by part, a scale slider, click / shift-click
// selection, the part hierarchy and GLB export. Talks to the local server (crossdistill/view/server.py);
// needs no network (three.js is served from /static/vendor/three).
//
// Test hooks: document.body.dataset.status is "loading", "busy", "ready" or "error";
// window.viewer exposes the state, setScale(), clickFace(), pickAt(), highlightedFaces(), timings.

import * as THREE from 'three';
import { OrbitControls } from '/static/vendor/three/OrbitControls.js';

// selected faces / points: the orange-red of selection.png (crossdistill.viz.highlight), never a part colour
// (hashed part colours keep every channel >= 64; the hand-picked ones differ)
const HIGHLIGHT = [255, 60, 0];
const FADE = 0.75, PALE = 215;     // the rest, while something is selected: faded towards light grey

const $ = (id) => document.getElementById(id);
const state = {
  info: null, isMesh: true, n: 0, scale: 1, labels: null, parts: null,
  cache: new Map(),       // scale -> {labels: Int32Array, parts: {...}}
  picks: [],              // [{scale, part}]
  selMask: null,          // Uint8Array (n): 1 on selected faces / points
  timings: { scale: null, click: null },
  lastSelect: null, lastExport: null,
};
let renderer, scene, camera, controls, object, colours, raycaster;
let pending = null, inflight = false;

function setStatus(s) { document.body.dataset.status = s; }
function message(text, error = false) { const m = $('message'); m.textContent = text; m.className = error ? 'error' : ''; }
const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r()));
const key = (s) => Number(s).toFixed(6);
const fmtScale = (s) => String(Math.round(Number(s) * 1e6) / 1e6);

async function getJSON(url) {
  const r = await fetch(url);
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error || r.statusText);
  return doc;
}

async function getBinary(url) {
  const r = await fetch(url);
  if (!r.ok) { const doc = await r.json().catch(() => ({})); throw new Error(doc.error || r.statusText); }
  return { buf: await r.arrayBuffer(), headers: r.headers };
}

// ---- geometry
function parseGeometry(buf) {
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 4));
  if (magic !== 'CDV1') throw new Error('unexpected geometry format');
  const [kind, nv, nf] = new Uint32Array(buf, 4, 3);
  const pos = new Float32Array(buf, 16, nv * 3);
  const faces = kind === 0 ? new Uint32Array(buf, 16 + nv * 12, nf * 3) : null;
  return { isMesh: kind === 0, pos, faces, nv, nf };
}

function buildObject(g) {
  const geom = new THREE.BufferGeometry();
  if (g.isMesh) {  // one vertex per face corner, so a colour stops exactly at a face's edge
    const p = new Float32Array(g.nf * 9);
    for (let f = 0; f < g.nf; f++) {
      for (let c = 0; c < 3; c++) {
        const v = g.faces[f * 3 + c] * 3, o = f * 9 + c * 3;
        p[o] = g.pos[v]; p[o + 1] = g.pos[v + 1]; p[o + 2] = g.pos[v + 2];
      }
    }
    geom.setAttribute('position', new THREE.BufferAttribute(p, 3));
    geom.computeVertexNormals();
    colours = new THREE.BufferAttribute(new Uint8Array(g.nf * 9), 3, true);
  } else {
    geom.setAttribute('position', new THREE.BufferAttribute(new Float32Array(g.pos), 3));
    colours = new THREE.BufferAttribute(new Uint8Array(g.nv * 3), 3, true);
  }
  colours.setUsage(THREE.DynamicDrawUsage);
  geom.setAttribute('color', colours);
  geom.computeBoundingSphere();
  const r = geom.boundingSphere.radius || 1;
  if (g.isMesh) {
    object = new THREE.Mesh(geom, new THREE.MeshLambertMaterial({ vertexColors: true, side: THREE.DoubleSide }));
  } else {
    object = new THREE.Points(geom, new THREE.PointsMaterial({ vertexColors: true, size: r * 0.012 }));
  }
  scene.add(object);
  raycaster.params.Points.threshold = r * 0.01;
  const c = geom.boundingSphere.center;
  controls.target.copy(c);
  camera.near = r / 100; camera.far = r * 100;
  camera.position.set(c.x + r * 1.6, c.y + r * 1.0, c.z + r * 2.2);
  camera.updateProjectionMatrix();
  controls.update();
}

function setupScene() {
  const view = $('view');
  renderer = new THREE.WebGLRenderer({ antialias: wantAntialias(), preserveDrawingBuffer: true });
  renderer.outputColorSpace = THREE.LinearSRGBColorSpace;  // palette bytes shown as they are
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  view.appendChild(renderer.domElement);
  scene = new THREE.Scene();
  scene.background = new THREE.Color(0xffffff);
  camera = new THREE.PerspectiveCamera(40, 1, 0.01, 100);
  // three.js lights are physical (Lambert divides by pi): these give ~0.5 ambient + ~0.55 head-on light
  scene.add(new THREE.AmbientLight(0xffffff, 0.5 * Math.PI));
  const head = new THREE.DirectionalLight(0xffffff, 0.55 * Math.PI);
  head.position.set(0.2, 0.3, 1);  // a headlight: it moves with the camera, aimed at what the camera looks at
  camera.add(head);
  camera.add(head.target);
  head.target.position.set(0, 0, -1);
  scene.add(camera);
  controls = new OrbitControls(camera, renderer.domElement);
  controls.addEventListener('change', render);
  raycaster = new THREE.Raycaster();
  new ResizeObserver(resize).observe(view);
  resize();
}

// Multisampling is nearly free on a GPU but triples a frame's time in a software renderer (SwiftShader,
// llvmpipe: 100k faces 290 -> 95 ms, docs/results/view.md): on only with a hardware renderer; ?aa=1 / ?aa=0 force it.
function wantAntialias() {
  const forced = new URLSearchParams(location.search).get('aa');
  if (forced !== null) return forced !== '0';
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return true;
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  const name = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  state.softwareRenderer = /swiftshader|llvmpipe|softpipe|software|microsoft basic/i.test(name);
  state.glRenderer = name;
  return !state.softwareRenderer;
}

function resize() {
  const view = $('view');
  const w = Math.max(view.clientWidth, 1), h = Math.max(view.clientHeight, 1);
  renderer.setSize(w, h);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
  render();
}

function render() { if (renderer) renderer.render(scene, camera); }

// Wait until the frame drawn last is on screen: WebGL draws asynchronously, so a one-pixel read
// (which waits for the drawing) comes first when timings must cover the drawing (viewer.syncFrames).
async function shown() {
  if (window.viewer && window.viewer.syncFrames) {
    const gl = renderer.getContext(), px = new Uint8Array(4);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  }
  await nextFrame();
}

// ---- colours
function hexRGB(hex) { const v = parseInt(hex.slice(1), 16); return [(v >> 16) & 255, (v >> 8) & 255, v & 255]; }

function paint() {
  const lab = state.labels, sel = state.selMask, n = state.n, parts = state.parts.parts;
  let any = false;
  for (let i = 0; i < n; i++) if (sel[i]) { any = true; break; }
  // one RGB triple per part (faded while something is selected), then a flat loop over the elements
  const pal = new Uint8Array(parts.length * 3);
  parts.forEach((p, k) => {
    hexRGB(p.colour).forEach((c, j) => { pal[k * 3 + j] = any ? c * (1 - FADE) + PALE * FADE : c; });
  });
  const arr = colours.array, per = state.isMesh ? 3 : 1, [hr, hg, hb] = HIGHLIGHT;
  for (let i = 0, o = 0; i < n; i++) {
    let r = hr, g = hg, b = hb;
    if (!sel[i]) { const c = lab[i] * 3; r = pal[c]; g = pal[c + 1]; b = pal[c + 2]; }
    for (let k = 0; k < per; k++, o += 3) { arr[o] = r; arr[o + 1] = g; arr[o + 2] = b; }
  }
  colours.needsUpdate = true;
}

function updateSelMask() {
  const mask = new Uint8Array(state.n);
  for (const p of state.picks) {
    const lab = state.cache.get(key(p.scale)).labels;
    for (let i = 0; i < state.n; i++) if (lab[i] === p.part) mask[i] = 1;
  }
  state.selMask = mask;
}

// ---- scale
async function fetchScale(s) {
  const k = key(s);
  if (state.cache.has(k)) return { ...state.cache.get(k), hit: true, serverMs: 0 };
  const [bin, parts] = await Promise.all([getBinary(`/api/labels?scale=${k}`), getJSON(`/api/parts?scale=${k}`)]);
  const entry = { labels: new Int32Array(bin.buf), parts };
  state.cache.set(k, entry);
  return { ...entry, hit: false, serverMs: Number(bin.headers.get('X-Compute-Ms') || 0) };
}

// Ask for scale s; while a request is in flight only the latest wish is kept.
function setScale(s) {
  s = Math.min(Math.max(Number(s), 0), state.info.scale_max);
  $('scale-value').textContent = fmtScale(s);
  pending = { s, t0: performance.now() };
  if (!inflight) drain();
}

async function drain() {
  inflight = true;
  setStatus('busy');
  try {
    while (pending) {
      const { s, t0 } = pending;
      pending = null;
      const got = await fetchScale(s);
      if (pending) continue;
      const t1 = performance.now();
      state.scale = s; state.labels = got.labels; state.parts = got.parts;
      updateSelMask(); paint();
      const t2 = performance.now();
      render();
      await shown();
      state.timings.scale = { scale: s, ms: performance.now() - t0, fetchMs: t1 - t0, paintMs: t2 - t1,
                              clientCache: got.hit, serverMs: got.serverMs };
      showScale();
    }
    setStatus('ready');
    message('ready');
  } catch (err) {
    setStatus('error'); message(String(err.message || err), true);
  } finally {
    inflight = false;
  }
}

function showScale() {
  const p = state.parts;
  $('scale-info').textContent = `${p.n_parts} parts${p.saved ? ' (segmented scale)' : ''}`;
  $('scale').value = state.scale;
  $('scale-exact').value = fmtScale(state.scale);
  $('scale-value').textContent = fmtScale(state.scale);
  document.body.dataset.scale = key(state.scale);
  listParts();
}

// ---- selection
function select(part, add) {
  const pick = { scale: state.scale, part };
  const at = state.picks.findIndex((p) => key(p.scale) === key(pick.scale) && p.part === part);
  if (add) { if (at >= 0) state.picks.splice(at, 1); else state.picks.push(pick); }
  else state.picks = [pick];
  updateSelMask(); paint(); render();
}

// Highlight the part under element el (a face or point); t0: when the click came (default: now).
async function clickElement(el, add, t0 = performance.now(), pickMs = 0) {
  const t1 = performance.now();
  const part = state.labels[el];
  select(part, add);
  await shown();
  const now = performance.now();
  state.timings.click = { element: el, part, ms: now - t1, pickMs, withPickMs: now - t0 };
  document.body.dataset.lastPart = String(part);
  showPicks();
  const info = state.parts.parts[part];
  showPart(info, null);
  if (state.isMesh) {  // the server's answer (crossdistill select) for the same click: name, area, and a check
    try {
      state.lastSelect = await getJSON(`/api/select?scale=${key(state.scale)}&face=${el}`);
      showPart(info, state.lastSelect);
    } catch (err) { message(String(err.message || err), true); }
  }
}

function showPart(p, sel) {
  const name = p.name ? `${p.name}${p.name_scale !== null && Math.abs(p.name_scale - state.scale) > 1e-9 ? ` (named at scale ${fmtScale(p.name_scale)})` : ''}` : 'unnamed';
  const size = state.isMesh ? `area ${p.area.toPrecision(4)} (${(100 * p.share).toFixed(1)}% of the object), ${p.n} faces`
    : `${p.n} points (${(100 * p.share).toFixed(1)}%)`;
  const check = sel && sel.part !== p.id ? ` - server says part ${sel.part}!` : '';
  $('part-info').innerHTML = '';
  $('part-info').append(swatch(p.colour), `part ${p.id} at scale ${fmtScale(state.scale)}: ${name}; ${size}${check}`);
}

function swatch(colour) { const s = document.createElement('span'); s.className = 'swatch'; s.style.background = colour; return s; }

function showPicks() {
  const ul = $('picks'); ul.innerHTML = '';
  for (const p of state.picks) {
    const info = state.cache.get(key(p.scale)).parts.parts[p.part];
    const li = document.createElement('li');
    li.append(swatch(info.colour), `part ${p.part} @ ${fmtScale(p.scale)}${info.name ? ' ' + info.name : ''}`);
    li.title = 'click: remove from the selection';
    li.onclick = () => { state.picks = state.picks.filter((q) => q !== p); updateSelMask(); paint(); render(); showPicks(); };
    ul.append(li);
  }
  listParts();
}

function listParts() {
  const ul = $('parts-list'); ul.innerHTML = '';
  const on = new Set(state.picks.filter((p) => key(p.scale) === key(state.scale)).map((p) => p.part));
  for (const p of state.parts.parts) {
    const li = document.createElement('li');
    li.append(swatch(p.colour), `${p.id}: ${p.name || 'part ' + p.id} - ${(100 * p.share).toFixed(1)}%`);
    if (on.has(p.id)) li.className = 'on';
    li.onclick = (ev) => { select(p.id, ev.shiftKey); showPicks(); showPart(p, null); };
    ul.append(li);
  }
}

function buildTree(nodes) {
  const ul = document.createElement('ul');
  for (const n of nodes) {
    const li = document.createElement('li');
    const row = document.createElement('div');
    row.className = 'node';
    row.textContent = `${n.name || 'part ' + n.part} @ ${fmtScale(n.scale)} - ${(100 * n.share).toFixed(1)}%`;
    row.onclick = async (ev) => {
      setScale(n.scale);
      while (inflight || pending) await nextFrame();
      select(n.part, ev.shiftKey); showPicks(); showPart(state.parts.parts[n.part], null);
    };
    li.append(row);
    if (n.children.length) li.append(buildTree(n.children));
    ul.append(li);
  }
  return ul;
}

// ---- picking
function pickAt(clientX, clientY) {
  const rect = renderer.domElement.getBoundingClientRect();
  const ndc = new THREE.Vector2(((clientX - rect.left) / rect.width) * 2 - 1, -((clientY - rect.top) / rect.height) * 2 + 1);
  raycaster.setFromCamera(ndc, camera);
  const hit = raycaster.intersectObject(object, false)[0];
  if (!hit) return -1;
  return state.isMesh ? hit.faceIndex : hit.index;
}

function setupPicking() {
  let down = null;
  const el = renderer.domElement;
  el.addEventListener('pointerdown', (e) => { down = [e.clientX, e.clientY]; });
  el.addEventListener('pointerup', (e) => {
    if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 4 || !state.labels) return;
    down = null;
    const t0 = performance.now();
    const f = pickAt(e.clientX, e.clientY);
    if (f >= 0) clickElement(f, e.shiftKey, t0, performance.now() - t0);
  });
}

// ---- export
async function exportGLB(what) {
  $('export-info').textContent = 'exporting...';
  try {
    const body = JSON.stringify({ scale: state.scale, what, picks: state.picks });
    const r = await fetch('/api/export', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    if (!r.ok) throw new Error((await r.json()).error);
    const blob = await r.blob();
    const name = (r.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/)?.[1] || 'parts.glb';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.append(a); a.click(); a.remove();
    state.lastExport = { name, bytes: blob.size, savedTo: r.headers.get('X-Saved-To') };
    $('export-info').textContent = `${name} (${(blob.size / 1024).toFixed(0)} KiB), also saved to ${state.lastExport.savedTo}`;
  } catch (err) { $('export-info').textContent = String(err.message || err); }
}

// ---- precompute progress
async function pollStatus() {
  try {
    const st = await getJSON('/api/status');
    if (!st.precompute) { $('precompute').textContent = 'slider scales are computed when first asked for'; return; }
    $('precompute').textContent = st.cached < st.of ? `computing slider scales: ${st.cached}/${st.of} ready` : `all ${st.of} slider scales ready`;
    if (st.cached < st.of) setTimeout(pollStatus, 2000);
  } catch (err) { /* the server went away */ }
}

// ---- start
async function main() {
  setupScene();
  const info = await getJSON('/api/info');
  state.info = info;
  document.title = `${info.name} - crossdistill view`;
  $('title').textContent = info.name;
  const dl = $('saved-scales');
  for (const s of info.saved_scales) { const o = document.createElement('option'); o.value = s; dl.append(o); }
  const slider = $('scale');
  slider.max = info.scale_max; slider.step = info.slider_step;
  $('notes').textContent = [
    `${info.n_elements} ${info.element}s; segmented at scales ${info.saved_scales.map(fmtScale).join(', ')}; `
    + `other scales run the same clustering on the saved field (scale unit: ${info.scale_unit})`,
    ...info.notes].join(' | ');
  $('tree').append(buildTree(info.hierarchy));
  const g = parseGeometry((await getBinary('/api/geometry')).buf);
  state.isMesh = g.isMesh; state.n = g.isMesh ? g.nf : g.nv;
  state.selMask = new Uint8Array(state.n);
  buildObject(g);
  setupPicking();
  slider.addEventListener('input', () => setScale(slider.value));
  $('scale-go').onclick = () => setScale($('scale-exact').value);
  $('scale-exact').addEventListener('keydown', (e) => { if (e.key === 'Enter') setScale($('scale-exact').value); });
  $('clear').onclick = () => { state.picks = []; updateSelMask(); paint(); render(); showPicks(); };
  $('export-selection').onclick = () => exportGLB('selection');
  $('export-all').onclick = () => exportGLB('all');
  pollStatus();
  setScale(info.default_scale);
}

window.viewer = {
  state,
  syncFrames: false,  // timings wait for the drawing itself (a one-pixel read), not only the next frame
  setScale,
  clickFace: (el, add = false) => clickElement(el, add),
  pickAt,
  exportGLB,
  render,
  colours: () => colours.array,
  drawMs() {  // one frame drawn and waited for, nothing changed: what the drawing alone costs
    const t = performance.now(), gl = renderer.getContext(), px = new Uint8Array(4);
    render();
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    return performance.now() - t;
  },  // the drawn colour of every vertex (meshes: 3 per face), RGB bytes
  highlightedFaces() {  // read back from the colour buffer: what is drawn highlighted
    const out = [], arr = colours.array, per = state.isMesh ? 9 : 3;
    for (let i = 0; i < state.n; i++) {
      const o = i * per;
      if (arr[o] === HIGHLIGHT[0] && arr[o + 1] === HIGHLIGHT[1] && arr[o + 2] === HIGHLIGHT[2]) out.push(i);
    }
    return out;
  },
  centre() { const c = object.geometry.boundingSphere.center; return [c.x, c.y, c.z]; },
  project(x, y, z) {  // a point in input units -> client pixel coordinates (for tests)
    const v = new THREE.Vector3(x, y, z).project(camera);
    const rect = renderer.domElement.getBoundingClientRect();
    return [rect.left + (v.x + 1) / 2 * rect.width, rect.top + (1 - v.y) / 2 * rect.height];
  },
};

main().catch((err) => { setStatus('error'); message(String(err.message || err), true); });
