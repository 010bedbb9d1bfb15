// The annotation tool. It keeps the operator's changes as a list of actions (add, move,
// remove, label) in localStorage, so a session survives a reload or a lost connection, and
// sends the whole list in bulk when submitted; the gateway summarizes it into at most one
// command per kind. What step comes next is what the task's events say (GET .../tasks/{id}).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("vl-token") || "", task: null, image: 0, images: [],
  actions: [], redo: [], selected: null, drag: null, seq: 0, beat: null, poll: null };

async function api(method, path, body) {
  const headers = { authorization: "Bearer " + state.token };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = (r.headers.get("content-type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw Object.assign(new Error((data && data.detail) || r.statusText), { status: r.status, code: data && data.code });
  return data;
}
function say(text, cls) { const s = $("status"); s.textContent = text; s.className = cls || ""; }
const key = () => state.task && `vl-session/${state.task.task_id}/${state.task.session.session_id}`;
function save() { if (key()) localStorage.setItem(key(), JSON.stringify({ actions: state.actions, redo: state.redo, base: state.task.version })); }

// the objects now: the task's objects with the session's actions replayed on them
function objects() {
  const m = new Map(state.task.objects.map((o) => [o.object_id, { ...o }]));
  for (const a of state.actions) {
    if (a.op === "add") m.set(a.object_id, { object_id: a.object_id, image: a.image, bbox: a.bbox, class_id: a.class_id ?? null });
    else if (a.op === "move" && m.has(a.object_id)) m.get(a.object_id).bbox = a.bbox;
    else if (a.op === "label" && m.has(a.object_id)) m.get(a.object_id).class_id = a.class_id;
    else if (a.op === "remove") m.delete(a.object_id);
  }
  return m;
}
function act(a) { state.actions.push(a); state.redo = []; save(); draw(); }

async function loadQueue() {
  try {
    const q = await api("GET", "/v1/operator/queue");
    $("who").textContent = "operator " + q.operator;
    const ul = $("queue"); ul.innerHTML = "";
    for (const t of q.tasks) {
      const li = document.createElement("li");
      li.dataset.task = t.task_id;
      li.textContent = `${t.class_group} · ${t.skill} · ${t.images} img` + (t.operator ? ` · ${t.operator}` : "");
      const b = document.createElement("button");
      b.textContent = t.mine ? "Open" : "Take"; b.disabled = !!t.operator && !t.mine;
      b.onclick = () => (t.mine ? open(t.task_id) : take(t));
      li.appendChild(b); ul.appendChild(li);
    }
    if (!q.tasks.length) ul.innerHTML = '<li class="muted">Nothing waits.</li>';
  } catch (e) { say(e.message, "bad"); }
}
async function take(t) {
  try { await api("POST", `/v1/operator/tasks/${t.task_id}/assign`, { version: t.version }); await open(t.task_id); }
  catch (e) { say(e.code === "version_conflict" ? "Someone took it first." : e.message, "bad"); loadQueue(); }
}
async function open(id, quiet) {
  const t = await api("GET", `/v1/operator/tasks/${id}`);
  state.task = t; state.image = 0; state.selected = null;
  const saved = t.session && JSON.parse(localStorage.getItem(key()) || "null");
  state.actions = saved && saved.base === t.version ? saved.actions : [];
  state.redo = saved && saved.base === t.version ? saved.redo : [];
  $("task").textContent = `${t.task_id} (v${t.version}, ${t.customer})`;
  const ul = $("classes"); ul.innerHTML = "";
  // the subtasks the customer leaves to the models are not the operator's (the server refuses them)
  if (!does("recognition")) ul.innerHTML = '<li class="muted">Classes come from the recognizer: fix the boxes.</li>';
  else t.class_group.classes.forEach((c, i) => { const li = document.createElement("li"); li.dataset.classId = c.id;
    li.textContent = `${i + 1}. ${c.name}`; li.onclick = () => relabel(c.id); ul.appendChild(li); });
  state.images = await Promise.all(t.images.map(async (im) => {
    const r = await fetch(im.url, { headers: { authorization: "Bearer " + state.token } });
    if (!r.ok) return null;
    const img = new Image(); img.src = URL.createObjectURL(await r.blob()); await img.decode().catch(() => {}); return img;
  }));
  clearInterval(state.beat);
  if (t.session) state.beat = setInterval(() => api("POST", `/v1/operator/tasks/${id}/heartbeat`, { session_id: t.session.session_id }).catch(() => {}), 20000);
  draw(); $("canvas").focus(); if (!quiet) say(t.session ? "Session open." : "");
  // the step last: when it shows, the tool is ready
  $("step").textContent = "step: " + t.step; $("step").dataset.step = t.step;
  // a model or a service is at work (e.g. the result after a submit): look again shortly
  clearTimeout(state.poll);
  if (t.step === "waiting") state.poll = setTimeout(() => { if (state.task && state.task.task_id === id) open(id, true).catch(() => {}); }, 1000);
}
function does(subtask) { return !state.task || !(state.task.hidden || []).includes(subtask); }
function relabel(classId) {
  if (!state.selected || !does("recognition")) return;
  act({ op: "label", object_id: state.selected, class_id: classId });
}
function draw() {
  const c = $("canvas"), g = c.getContext("2d"), t = state.task;
  if (!t) return;
  const im = t.images[state.image]; c.width = im.width; c.height = im.height;
  g.fillStyle = "#444"; g.fillRect(0, 0, c.width, c.height);
  if (state.images[state.image]) g.drawImage(state.images[state.image], 0, 0);
  for (const o of objects().values()) {
    if (o.image !== state.image) continue;
    const sel = o.object_id === state.selected;
    g.lineWidth = sel ? 3 : 2; g.strokeStyle = o.class_id == null ? "#ff3b30" : sel ? "#0af" : "#34c759";
    g.strokeRect(o.bbox.x, o.bbox.y, o.bbox.w, o.bbox.h);
    const name = (t.class_group.classes.find((k) => k.id === o.class_id) || {}).name || "?";
    g.fillStyle = g.strokeStyle; g.font = "12px sans-serif"; g.fillText(name, o.bbox.x + 2, o.bbox.y + 12);
  }
  if (state.drag && state.drag.kind === "draw") { const b = state.drag.box; g.setLineDash([4, 3]); g.strokeStyle = "#fff"; g.strokeRect(b.x, b.y, b.w, b.h); g.setLineDash([]); }
  $("imageno").textContent = `${state.image + 1} / ${t.images.length}`;
  $("pending").textContent = `${state.actions.length} change(s) not sent`;
  document.querySelectorAll("#classes li").forEach((li) => { const o = objects().get(state.selected);
    li.className = o && String(o.class_id) === li.dataset.classId ? "sel" : ""; });
}
function at(e) { const r = $("canvas").getBoundingClientRect(); return { x: e.clientX - r.left, y: e.clientY - r.top }; }
function hit(p) {
  const hits = [...objects().values()].filter((o) => o.image === state.image && p.x >= o.bbox.x && p.y >= o.bbox.y && p.x <= o.bbox.x + o.bbox.w && p.y <= o.bbox.y + o.bbox.h);
  return hits.length ? hits[hits.length - 1] : null;
}
$("canvas").addEventListener("mousedown", (e) => {
  if (!state.task || !state.task.session) return;
  const p = at(e), o = hit(p);
  if (!does("detection")) { state.selected = o ? o.object_id : null; draw(); return; }
  if (o) { state.selected = o.object_id; state.drag = { kind: "move", from: p, orig: { ...o.bbox }, id: o.object_id }; }
  else { state.selected = null; state.drag = { kind: "draw", from: p, box: { x: p.x, y: p.y, w: 0, h: 0 } }; }
  draw();
});
window.addEventListener("mousemove", (e) => {
  const d = state.drag; if (!d) return; const p = at(e);
  if (d.kind === "draw") d.box = { x: Math.min(p.x, d.from.x), y: Math.min(p.y, d.from.y), w: Math.abs(p.x - d.from.x), h: Math.abs(p.y - d.from.y) };
  else d.now = { ...d.orig, x: d.orig.x + p.x - d.from.x, y: d.orig.y + p.y - d.from.y };
  draw();
});
window.addEventListener("mouseup", () => {
  const d = state.drag; state.drag = null; if (!d) return;
  const im = state.task.images[state.image];
  const clamp = (b) => { const x = Math.max(0, Math.min(b.x, im.width - 1)), y = Math.max(0, Math.min(b.y, im.height - 1));
    return { x: Math.round(x), y: Math.round(y), w: Math.round(Math.min(b.w, im.width - x)), h: Math.round(Math.min(b.h, im.height - y)) }; };
  if (d.kind === "draw" && d.box.w >= 4 && d.box.h >= 4) {
    const id = `u${Date.now().toString(36)}${(state.seq++).toString(36)}`;
    state.selected = id; act({ op: "add", object_id: id, image: state.image, bbox: clamp(d.box), class_id: null });
  } else if (d.kind === "move" && d.now && (d.now.x !== d.orig.x || d.now.y !== d.orig.y)) {
    act({ op: "move", object_id: d.id, bbox: clamp(d.now) });
  } else draw();
});
function undo() { if (state.actions.length) { state.redo.push(state.actions.pop()); save(); draw(); } }
function redo() { if (state.redo.length) { state.actions.push(state.redo.pop()); save(); draw(); } }
function image(step) { if (!state.task) return; state.image = (state.image + step + state.task.images.length) % state.task.images.length; state.selected = null; draw(); }
async function submit() {
  const t = state.task; if (!t || !t.session) return;
  say("Sending…");
  try {
    const r = await api("POST", `/v1/operator/tasks/${t.task_id}/session`, { session_id: t.session.session_id, base_version: t.version, actions: state.actions });
    localStorage.removeItem(key()); state.actions = []; state.redo = []; clearInterval(state.beat);
    say(`Sent ${r.actions ?? 0} change(s) as ${r.commands ?? 0} command(s).`, "ok");
    await open(t.task_id); loadQueue();
  } catch (e) {
    // offline or the server is away: the session stays in this browser; submit again later
    say(e.status ? `Refused: ${e.message}` : "Offline: the session is kept here; submit again later.", "bad");
  }
}
async function release() {
  const t = state.task; if (!t || !t.session) return;
  try { await api("POST", `/v1/operator/tasks/${t.task_id}/release`, { session_id: t.session.session_id }); localStorage.removeItem(key()); clearInterval(state.beat); await open(t.task_id); loadQueue(); }
  catch (e) { say(e.message, "bad"); }
}
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && e.key.toLowerCase() === "z" && !e.shiftKey) { e.preventDefault(); undo(); }
  else if (ctrl && (e.key.toLowerCase() === "y" || (e.key.toLowerCase() === "z" && e.shiftKey))) { e.preventDefault(); redo(); }
  else if (ctrl && e.key === "Enter") { e.preventDefault(); submit(); }
  else if ((e.key === "Delete" || e.key === "Backspace") && state.selected && does("detection")) { e.preventDefault(); const id = state.selected; state.selected = null; act({ op: "remove", object_id: id }); }
  else if (/^[1-9]$/.test(e.key) && state.task) { const c = state.task.class_group.classes[Number(e.key) - 1]; if (c) relabel(c.id); }
  else if (e.key === "[") image(-1); else if (e.key === "]") image(1);
});
$("login").onsubmit = (e) => { e.preventDefault(); state.token = $("token").value.trim(); sessionStorage.setItem("vl-token", state.token); loadQueue(); };
$("refresh").onclick = loadQueue; $("undo").onclick = undo; $("redo").onclick = redo; $("submit").onclick = submit;
$("release").onclick = release; $("prev").onclick = () => image(-1); $("next").onclick = () => image(1);
if (state.token) loadQueue();
