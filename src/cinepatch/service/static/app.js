// cinepatch studio: a plain-JS client of the service's own Videos API (no build, no CDN).
// Auth is the HttpOnly cookie set by POST /studio/session, so <img>, <video> and EventSource
// requests carry it without the page ever holding the key.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

const state = {
  options: null,
  videos: new Map(),      // id -> video object
  order: [],              // ids, newest first
  lastId: null,
  hasMore: false,
  streams: new Map(),     // id -> EventSource
  current: null,          // id shown in the detail view
  progressLog: [],        // [id, percent] as rendered: the browser test reads it
};
window.__studio = state;

// ------------------------------------------------------------------------------------------
// API
// ------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.param = err.param;
  }
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && path !== "/studio/session") showLogin();
    throw new ApiError(response.status, data);
  }
  return data;
}

function toast(message, kind = "") {
  const node = el("div", { className: `toast ${kind}`, textContent: message });
  $("#toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) return;
  const where = error.param ? ` (${error.param})` : "";
  toast(`${error.message}${where}`, "bad");
}

// ------------------------------------------------------------------------------------------
// Sign-in
// ------------------------------------------------------------------------------------------

function showLogin() {
  const dialog = $("#login");
  if (!dialog.open) dialog.showModal();
  $("#login-key").focus();
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("POST", "/studio/session", { key: $("#login-key").value.trim() });
    $("#login").close();
    $("#login-key").value = "";
    await start();
  } catch (error) {
    $("#login-error").textContent = error.message;
  }
});

$("#logout").addEventListener("click", async () => {
  await api("DELETE", "/studio/session").catch(() => {});
  location.reload();
});

// ------------------------------------------------------------------------------------------
// Compose
// ------------------------------------------------------------------------------------------

function fillSelect(select, values, chosen) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, textContent: v, selected: v === chosen })));
}

function setupOptions(options) {
  state.options = options;
  fillSelect($("#size"), options.sizes, options.default_size);
  fillSelect($("#sb-size"), options.sizes, options.default_size);
  fillSelect($("#model"), options.models, options.default_model);
  const preset = $("#preset");
  preset.replaceChildren(el("option", { value: "", textContent: "none" }),
    ...options.presets.map((p) => el("option", { value: p, textContent: p })));
  const seconds = $("#seconds");
  seconds.max = Math.floor(options.max_seconds);
  seconds.value = Math.min(options.default_seconds, options.max_seconds);
  $("#seconds-out").textContent = `${seconds.value} s`;
  $("#prompt").maxLength = options.max_prompt_chars;
  $("#who").textContent = options.owner === "anonymous" ? "local, no key" : `key ${options.owner}`;
  $("#logout").hidden = options.owner === "anonymous";
}

$("#seconds").addEventListener("input", (e) => { $("#seconds-out").textContent = `${e.target.value} s`; });
$("#prompt").addEventListener("input", (e) => { $("#prompt-count").textContent = e.target.value.length; });
$("#dice").addEventListener("click", () => { $("#seed").value = Math.floor(Math.random() * 2 ** 31); });
$("#prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) $("#generate").click();
});

async function submit(button, path, body) {
  button.disabled = true;
  try {
    const video = await api("POST", path, body);
    addVideo(video, true);
    return video;
  } catch (error) {
    fail(error);
    return null;
  } finally {
    button.disabled = false;
  }
}

$("#generate").addEventListener("click", async () => {
  const prompt = $("#prompt").value.trim();
  if (!prompt) { toast("Describe the shot first.", "bad"); $("#prompt").focus(); return; }
  const body = { prompt, size: $("#size").value, seconds: $("#seconds").value, model: $("#model").value };
  if ($("#preset").value) body.preset = $("#preset").value;
  if ($("#seed").value !== "") body.seed = Number($("#seed").value);
  await submit($("#generate"), "/v1/videos", body);
});

// ------------------------------------------------------------------------------------------
// Library
// ------------------------------------------------------------------------------------------

function aspect(video) {
  const [w, h] = video.size.split("x").map(Number);
  return `${w} / ${h}`;
}

function contentUrl(video, variant) {
  return `/v1/videos/${video.id}/content?variant=${variant}&v=${video.completed_at || 0}`;
}

function renderCard(video) {
  let card = document.querySelector(`.card[data-id="${video.id}"]`);
  const fresh = !card;
  if (fresh) {
    card = el("article", { className: "card" });
    card.dataset.id = video.id;
    card.addEventListener("click", () => openDetail(video.id));
    const thumb = el("div", { className: "thumb" }, el("div", { className: "sprite" }), el("div", { className: "scrub" }));
    thumb.addEventListener("mousemove", (e) => scrub(card, e));
    thumb.addEventListener("mouseenter", () => loadSprite(card));
    card.append(thumb, el("div", { className: "body" }, el("div", { className: "title" }), el("div", { className: "tags" })));
  }
  card.className = `card ${video.status}`;
  const thumb = $(".thumb", card);
  thumb.style.aspectRatio = "16 / 10";
  $(".title", card).textContent = video.prompt;
  const tags = $(".tags", card);
  const kind = video.cinepatch.kind;
  tags.replaceChildren(
    ...(kind !== "create" ? [el("span", { className: "tag kind", textContent: kind })] : []),
    el("span", { className: "tag", textContent: `${video.seconds}s · ${video.size}` }),
    el("span", { className: `tag ${video.status}`, textContent: video.status.replace("_", " ") }),
  );
  let wait = $(".wait", thumb);
  if (video.status === "completed") {
    if (wait) wait.remove();
    thumb.style.backgroundImage = `url("${contentUrl(video, "thumbnail")}")`;
  } else {
    if (!wait) {
      wait = el("div", { className: "wait" }, el("div", { className: "bar" }, el("i")), el("span", { className: "pct" }));
      thumb.append(wait);
    }
    if (video.status === "failed") {
      wait.replaceChildren(el("span", { textContent: (video.error && video.error.message) || "failed" }));
    } else {
      $(".bar i", wait).style.width = `${video.progress}%`;
      $(".pct", wait).textContent = video.status === "queued" ? "queued" : `${video.progress}%`;
    }
  }
  return { card, fresh };
}

function loadSprite(card) {
  const video = state.videos.get(card.dataset.id);
  const sprite = $(".sprite", card);
  if (!video || video.status !== "completed" || sprite.dataset.src) return;
  const url = contentUrl(video, "spritesheet");
  const img = new Image();
  img.onload = () => {
    sprite.dataset.src = url;
    sprite.style.backgroundImage = `url("${url}")`;
    sprite.classList.add("ready");
    sprite.dataset.frames = video.cinepatch.sprite_frames || 10;
  };
  img.src = url;
}

// Hover preview: the mouse's x position picks a frame of the spritesheet (one row of frames).
function scrub(card, event) {
  const sprite = $(".sprite", card);
  const frames = Number(sprite.dataset.frames || 0);
  if (!frames) return;
  const box = sprite.getBoundingClientRect();
  const x = Math.min(0.999, Math.max(0, (event.clientX - box.left) / box.width));
  const index = Math.floor(x * frames);
  const video = state.videos.get(card.dataset.id);
  const [w, h] = video.size.split("x").map(Number);
  // Fit one frame inside the box, centred, like background-size: contain would.
  const scale = Math.min(box.width / w, box.height / h);
  const fw = w * scale, fh = h * scale;
  sprite.style.backgroundSize = `${fw * frames}px ${fh}px`;
  sprite.style.backgroundPosition = `${(box.width - fw) / 2 - index * fw}px ${(box.height - fh) / 2}px`;
  $(".scrub", card).style.width = `${x * 100}%`;
}

function addVideo(video, prepend = false) {
  const known = state.videos.has(video.id);
  state.videos.set(video.id, video);
  const { card, fresh } = renderCard(video);
  if (fresh) {
    if (prepend) { $("#grid").prepend(card); state.order.unshift(video.id); }
    else { $("#grid").append(card); state.order.push(video.id); }
  }
  if (!known) watch(video);
  updateCounts();
}

function updateVideo(video) {
  const before = state.videos.get(video.id);
  state.videos.set(video.id, video);
  renderCard(video);
  if (video.status === "in_progress" || video.status === "completed") {
    state.progressLog.push([video.id, video.progress]);
  }
  if (state.current === video.id) renderDetail(video);
  if (before && before.status !== video.status && video.status === "completed") toast(`Ready: ${video.prompt}`, "ok");
  if (before && before.status !== video.status && video.status === "failed") toast(`Failed: ${video.error ? video.error.message : video.prompt}`, "bad");
  refreshBlendChoices();
}

// Live progress over Server-Sent Events, one stream per unfinished video — at most MAX_STREAMS,
// since a browser keeps only six connections to one host; the rest are polled.
const MAX_STREAMS = 3;

function watch(video) {
  if (video.status === "completed" || video.status === "failed" || state.streams.has(video.id)) return;
  if (state.streams.size >= MAX_STREAMS) return;  // the poller below picks it up
  const source = new EventSource(`/v1/videos/${video.id}/events`);
  state.streams.set(video.id, source);
  source.addEventListener("video", (e) => updateVideo(JSON.parse(e.data)));
  source.addEventListener("done", () => { source.close(); state.streams.delete(video.id); });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) state.streams.delete(video.id);
  };
}

setInterval(async () => {
  const waiting = [...state.videos.values()].filter(
    (v) => (v.status === "queued" || v.status === "in_progress") && !state.streams.has(v.id));
  for (const video of waiting) {
    if (state.streams.size < MAX_STREAMS) { watch(video); continue; }
    try { updateVideo(await api("GET", `/v1/videos/${video.id}`)); } catch (error) { /* next round */ }
  }
}, 1500);

function updateCounts() {
  const n = state.videos.size;
  $("#lib-count").textContent = n ? `${n} video${n === 1 ? "" : "s"}` : "";
  $("#empty").hidden = n > 0;
  $("#more").hidden = !state.hasMore;
  refreshBlendChoices();
}

async function loadLibrary(after) {
  const query = new URLSearchParams({ limit: "24", order: "desc" });
  if (after) query.set("after", after);
  const page = await api("GET", `/v1/videos?${query}`);
  for (const video of page.data) addVideo(video);
  state.lastId = page.last_id;
  state.hasMore = page.has_more;
  updateCounts();
}

$("#more").addEventListener("click", () => loadLibrary(state.lastId).catch(fail));

// ------------------------------------------------------------------------------------------
// Detail view
// ------------------------------------------------------------------------------------------

function meta(dl, rows) {
  dl.replaceChildren(...rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: String(v) })]));
}

function renderDetail(video) {
  $("#d-prompt").textContent = video.prompt;
  $("#d-expanded").textContent = video.cinepatch.expanded_prompt || (video.status === "completed" ? "—" : "(after generation)");
  const created = new Date(video.created_at * 1000).toLocaleString();
  meta($("#d-meta"), [
    ["Status", video.status === "in_progress" ? `in progress · ${video.progress}%` : video.status],
    ["Kind", video.cinepatch.kind],
    ["Size", video.size], ["Duration", `${video.seconds} s`],
    ["Frames", video.cinepatch.frames && `${video.cinepatch.frames} @ ${video.cinepatch.fps} fps`],
    ["Seed", video.cinepatch.seed],
    ["Model", video.model + (video.cinepatch.requested_model && video.cinepatch.requested_model !== video.model
      ? ` (asked for ${video.cinepatch.requested_model})` : "")], ["Preset", video.cinepatch.preset],
    ["From", video.remixed_from_video_id || (video.cinepatch.sources || []).join(", ")],
    ["Created", created], ["Id", video.id],
    ["Error", video.error && video.error.message],
    ["Notes", (video.cinepatch.notes || []).join("\n")],
  ]);
  const stage = $(".stage");
  const player = $("#player");
  if (video.status === "completed") {
    stage.classList.remove("waiting");
    const src = contentUrl(video, "video");
    if (player.dataset.src !== src) {
      player.dataset.src = src;
      player.src = src;
      player.play().catch(() => {});
      $("#download").href = src;
      $("#download").download = `${video.id}.mp4`;
      loadProvenance(video);
      loadPlan(video);
      const seconds = Number(video.seconds) || 1;
      $("#recut-end").value = Math.min(seconds, Number($("#recut-start").value) + seconds / 2).toFixed(2);
    }
  } else {
    stage.classList.add("waiting");
    player.removeAttribute("src");
    player.dataset.src = "";
    $("#stage-progress").textContent = video.status === "failed" ? "failed" : `${video.progress}%`;
    $("#d-prov-badge").textContent = "pending";
    $("#d-prov-badge").className = "badge";
    $("#d-prov-body").replaceChildren();
  }
  for (const button of $("#actions").querySelectorAll("button:not(#delete)")) {
    button.disabled = video.status !== "completed";
  }
}

// One C2PA action as a readable row, as `cinepatch verify` prints it:
// "c2pa.created (trainedAlgorithmicMedia) model=world · cinepatch 0.1".
function describeAction(action) {
  const source = String(action.digitalSourceType || "").split("/").pop();
  const params = action.parameters || {};
  const agent = action.softwareAgent;
  return [
    String(action.action || "action") + (source ? ` (${source})` : ""),
    params.model ? `model=${params.model}` : "",
    params.edit ? `edit=${params.edit}` : "",
    action.description || "",
    agent && typeof agent === "object" ? [agent.name, agent.version].filter(Boolean).join(" ") : agent || "",
  ].filter(Boolean).join(" · ");
}

function describe(name, value) {
  if (/(^|\.)actions$/.test(name) && value && typeof value === "object") return describeAction(value);
  if (value && typeof value === "object") {  // any other object in a list: its fields, inline
    return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }
  return value;
}

function flatten(object, prefix = "", rows = []) {
  for (const [key, value] of Object.entries(object || {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (Array.isArray(value)) {
      if (value.some((item) => item && typeof item === "object")) {
        value.forEach((item, i) => rows.push([value.length > 1 ? `${name} ${i + 1}` : name, describe(name, item)]));
      } else {
        rows.push([name, value.join(", ")]);
      }
    } else if (value && typeof value === "object") {
      flatten(value, name, rows);
    } else {
      rows.push([name, value]);
    }
  }
  return rows;
}

async function loadProvenance(video) {
  const badge = $("#d-prov-badge");
  badge.textContent = "checking…";
  badge.className = "badge";
  $("#d-prov-body").replaceChildren();
  try {
    const { report } = await api("GET", `/v1/videos/${video.id}/provenance`);
    const rows = flatten(report);
    meta($("#d-prov-body"), rows.slice(0, 40));
    const ok = report.made_by_cinepatch === true;
    badge.textContent = report.available === false ? "not available" : ok ? "made by cinepatch" : "not verified";
    badge.className = `badge ${ok ? "ok" : "warn"}`;
  } catch (error) {
    badge.textContent = "unavailable";
    badge.className = "badge warn";
  }
}

function openDetail(id) {
  state.current = id;
  const video = state.videos.get(id);
  $("#remix-prompt").value = "";
  $("#extend-prompt").value = "";
  $("#recut-start").value = 0;
  $("#player").dataset.src = "";
  renderDetail(video);
  refreshBlendChoices();
  const dialog = $("#detail");
  if (!dialog.open) dialog.showModal();
}

function closeDetail() {
  const player = $("#player");
  player.pause();
  state.current = null;
  $("#detail").close();
}
$("#close").addEventListener("click", closeDetail);
$("#detail").addEventListener("click", (e) => { if (e.target === $("#detail")) closeDetail(); });
$("#detail").addEventListener("close", () => { $("#player").pause(); state.current = null; });

function refreshBlendChoices() {
  const select = $("#blend-with");
  const current = state.current;
  const choices = state.order.map((id) => state.videos.get(id))
    .filter((v) => v && v.id !== current && v.status === "completed");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", textContent: choices.length ? "Blend into…" : "no other video yet" }),
    ...choices.map((v) => el("option", { value: v.id, textContent: v.prompt.slice(0, 48), selected: v.id === chosen })));
}

async function edit(button, path, body) {
  const video = await submit(button, path, body);
  if (video) openDetail(video.id);
}

$("#remix-go").addEventListener("click", () => {
  const prompt = $("#remix-prompt").value.trim();
  if (!prompt) { toast("Describe the change for the remix.", "bad"); return; }
  edit($("#remix-go"), `/v1/videos/${state.current}/remix`, { prompt });
});
$("#extend-go").addEventListener("click", () => {
  const source = state.videos.get(state.current);
  edit($("#extend-go"), "/v1/videos/extensions", {
    video: { id: source.id }, prompt: $("#extend-prompt").value.trim() || source.prompt, seconds: $("#extend-seconds").value,
  });
});
$("#recut-go").addEventListener("click", () => {
  edit($("#recut-go"), "/v1/videos/recuts", {
    video: { id: state.current }, start: Number($("#recut-start").value), end: Number($("#recut-end").value),
  });
});
$("#loop-go").addEventListener("click", () => edit($("#loop-go"), "/v1/videos/loops", { video: { id: state.current } }));
$("#blend-go").addEventListener("click", () => {
  const other = $("#blend-with").value;
  if (!other) { toast("Pick a video to blend into.", "bad"); return; }
  edit($("#blend-go"), "/v1/videos/blends", { videos: [{ id: state.current }, { id: other }] });
});
$("#delete").addEventListener("click", async () => {
  const id = state.current;
  if (!confirm("Delete this video for good?")) return;
  try {
    await api("DELETE", `/v1/videos/${id}`);
    state.videos.delete(id);
    state.order = state.order.filter((x) => x !== id);
    const card = document.querySelector(`.card[data-id="${id}"]`);
    if (card) card.remove();
    closeDetail();
    updateCounts();
  } catch (error) { fail(error); }
});

// ------------------------------------------------------------------------------------------
// Storyboard editor: cards on a timeline, width proportional to length, drag to reorder
// ------------------------------------------------------------------------------------------

const board = [
  { prompt: "a red ball rolls into the frame", seconds: 2 },
  { prompt: "the ball bounces twice", seconds: 2 },
];
const PX_PER_SECOND = 70;
let dragIndex = null;

function renderBoard() {
  const timeline = $("#timeline");
  timeline.replaceChildren(...board.map((card, i) => {
    const text = el("textarea", { value: card.prompt, placeholder: "What happens in this shot?" });
    text.addEventListener("input", () => { card.prompt = text.value; });
    const secs = el("input", { type: "number", min: "0.5", max: "12", step: "0.5", value: card.seconds });
    secs.addEventListener("change", () => { card.seconds = Math.max(0.5, Number(secs.value) || 1); renderBoard(); });
    const remove = el("button", { className: "ghost icon small", textContent: "✕", title: "Remove card", disabled: board.length === 1 });
    remove.addEventListener("click", () => { board.splice(i, 1); renderBoard(); });
    const node = el("div", { className: "sb-card", draggable: true },
      el("span", { className: "num", textContent: `Shot ${i + 1}` }), text,
      el("div", { className: "row" }, secs, el("span", { textContent: "s" }), remove));
    node.style.width = `${Math.max(170, card.seconds * PX_PER_SECOND)}px`;
    node.style.setProperty("--hue", `hsl(${(i * 57 + 12) % 360} 80% 65%)`);
    node.addEventListener("dragstart", () => { dragIndex = i; node.classList.add("dragging"); });
    node.addEventListener("dragend", () => node.classList.remove("dragging"));
    node.addEventListener("dragover", (e) => e.preventDefault());
    node.addEventListener("drop", (e) => {
      e.preventDefault();
      if (dragIndex === null || dragIndex === i) return;
      const [moved] = board.splice(dragIndex, 1);
      board.splice(i, 0, moved);
      dragIndex = null;
      renderBoard();
    });
    return node;
  }));
  const total = board.reduce((sum, c) => sum + Number(c.seconds), 0);
  const max = state.options ? state.options.max_seconds : 12;
  const label = $("#sb-total");
  label.textContent = `${total.toFixed(1)} s of ${max} s`;
  label.classList.toggle("over", total > max);
  const ruler = $("#ruler");
  let offset = 0;
  const marks = [];
  board.forEach((card, i) => {
    marks.push(el("span", { textContent: `${offset.toFixed(1)}s`, style: `left:${timelineOffset(i)}px` }));
    offset += Number(card.seconds);
  });
  ruler.replaceChildren(...marks);
}

function timelineOffset(index) {
  const cards = $("#timeline").children;
  return cards[index] ? cards[index].offsetLeft - $("#timeline").offsetLeft + 4 : 0;
}

$("#sb-add").addEventListener("click", () => { board.push({ prompt: "", seconds: 2 }); renderBoard(); });
$("#sb-render").addEventListener("click", async () => {
  if (board.some((c) => !c.prompt.trim())) { toast("Every card needs a prompt.", "bad"); return; }
  const video = await submit($("#sb-render"), "/v1/videos/storyboards", {
    cards: board.map((c) => ({ prompt: c.prompt.trim(), seconds: Number(c.seconds) })), size: $("#sb-size").value,
  });
  if (video) toast("Storyboard queued.", "ok");
});

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    $("#panel-create").hidden = tab.dataset.tab !== "create";
    $("#panel-storyboard").hidden = tab.dataset.tab !== "storyboard";
    if (tab.dataset.tab === "storyboard") renderBoard();
  });
}

// ------------------------------------------------------------------------------------------
// Start
// ------------------------------------------------------------------------------------------

async function start() {
  try {
    setupOptions(await api("GET", "/v1/studio/options"));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) fail(error);
    return;
  }
  state.videos.clear();
  state.order = [];
  $("#grid").replaceChildren();
  await loadLibrary().catch(fail);
  renderBoard();
}

start();

// ------------------------------------------------------------------------------------------
// Scene plan overlay: the plan the video was made with (GET /v1/videos/{id}/plan), drawn over
// the player and scrubbing with it; drag a box at the current frame, or a path's end point,
// then Regenerate renders the moved plan (POST /v1/videos with `plan`).
// ------------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const PLAN_COLOURS = ["#ffd166", "#06d6a0", "#ef476f"];
const plan = { video: null, data: null, tracks: [], anchors: [], moved: false, drag: null };
state.plan = plan;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// One box per frame from `boxes` or `keyframes` (linear between keyframes, held outside them),
// as docs/plans.md reads them; the anchors are the frames a person placed (kept when dragging).
function expandTrack(obj, frames) {
  if (obj.boxes) return { boxes: obj.boxes.map((b) => b.slice()), anchors: [0, frames - 1] };
  const keys = obj.keyframes;
  const boxes = [];
  for (let t = 0; t < frames; t++) {
    let i = 0;
    while (i < keys.length - 1 && keys[i + 1].frame <= t) i++;
    const a = keys[i], b = keys[Math.min(i + 1, keys.length - 1)];
    const u = b.frame > a.frame ? Math.min(1, Math.max(0, (t - a.frame) / (b.frame - a.frame))) : 0;
    boxes.push(a.box.map((v, k) => v + u * (b.box[k] - v)));
  }
  return { boxes, anchors: [...new Set([0, ...keys.map((k) => k.frame), frames - 1])].sort((x, y) => x - y) };
}

async function loadPlan(video) {
  plan.video = video; plan.data = null; plan.moved = false;
  $("#plan-overlay").toggleAttribute("hidden", true);  // an SVG element has no `hidden` property
  $("#plan-act").hidden = true;
  try {
    const reply = await api("GET", `/v1/videos/${video.id}/plan`);
    if (plan.video !== video) return;
    plan.data = reply.plan;
  } catch { return; }  // a model that reads no plans: no overlay
  const frames = plan.data.canvas.frames;
  const expanded = plan.data.objects.map((o) => expandTrack(o, frames));
  plan.tracks = expanded.map((e) => e.boxes);
  plan.anchors = expanded.map((e) => e.anchors);
  $("#plan-overlay").toggleAttribute("hidden", false);
  $("#plan-act").hidden = false;
  $("#regen-go").disabled = true;
  drawPlan();
}

function currentFrame() {
  const player = $("#player");
  const { fps, frames } = plan.data.canvas;
  return Math.max(0, Math.min(frames - 1, Math.floor(player.currentTime * fps + 1e-3)));
}

// The overlay covers the player; its viewBox is the video's canvas, letterboxed like the video.
function placeOverlay() {
  const player = $("#player"), overlay = $("#plan-overlay");
  overlay.style.left = `${player.offsetLeft}px`;
  overlay.style.top = `${player.offsetTop}px`;
  overlay.style.width = `${player.clientWidth}px`;
  overlay.style.height = `${player.clientHeight}px`;
  const { width, height } = plan.data.canvas;
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  overlay.setAttribute("preserveAspectRatio", "xMidYMid meet");
}

function drawPlan() {
  if (!plan.data) return;
  placeOverlay();
  const { width, height } = plan.data.canvas;
  const t = currentFrame();
  const nodes = [];
  plan.tracks.forEach((boxes, n) => {
    const colour = PLAN_COLOURS[n % PLAN_COLOURS.length];
    const points = boxes.map((b) => `${((b[0] + b[2]) / 2) * width},${((b[1] + b[3]) / 2) * height}`).join(" ");
    nodes.push(svg("polyline", { class: `path${plan.moved ? " moved" : ""}`, points, stroke: colour }));
    const b = boxes[t];
    nodes.push(svg("rect", { class: "box", "data-object": n, x: b[0] * width, y: b[1] * height,
      width: (b[2] - b[0]) * width, height: (b[3] - b[1]) * height, stroke: colour }));
    const e = boxes[boxes.length - 1];
    nodes.push(svg("circle", { class: "end", "data-object": n, cx: ((e[0] + e[2]) / 2) * width,
      cy: ((e[1] + e[3]) / 2) * height, r: Math.max(3, Math.min(width, height) * 0.035), fill: colour }));
  });
  $("#plan-overlay").replaceChildren(...nodes);
}

// Redrawn when the frame shown or the player's size changes (not every animation frame, so
// the nodes under the pointer stay the same between frames).
let drawn = "";
function tick() {
  if (plan.data && !plan.drag) {
    const player = $("#player");
    const key = `${plan.video.id}|${currentFrame()}|${player.clientWidth}x${player.clientHeight}`;
    if (key !== drawn) { drawn = key; drawPlan(); }
  }
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
window.addEventListener("resize", () => drawPlan());

function toCanvas(event) {
  const overlay = $("#plan-overlay");
  const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(overlay.getScreenCTM().inverse());
  return [point.x / plan.data.canvas.width, point.y / plan.data.canvas.height];
}

// Moving frame f by d keeps the other anchors: the move fades linearly to nothing at the
// anchors before and after f, so the path bends through the new point.
function moveTrack(n, f, d) {
  const boxes = plan.tracks[n], anchors = plan.anchors[n];
  const before = Math.max(...anchors.filter((a) => a < f), f === 0 ? 0 : 0);
  const afterList = anchors.filter((a) => a > f);
  const after = afterList.length ? Math.min(...afterList) : null;
  boxes.forEach((b, t) => {
    let w = 0;
    if (t === f) w = 1;
    else if (t < f && t > before) w = (t - before) / (f - before);
    else if (t > f && after !== null && t < after) w = (after - t) / (after - f);
    else if (t > f && after === null) w = 1;
    b[0] += w * d[0]; b[2] += w * d[0]; b[1] += w * d[1]; b[3] += w * d[1];
  });
  if (!anchors.includes(f)) { anchors.push(f); anchors.sort((x, y) => x - y); }
}

$("#plan-overlay").addEventListener("pointerdown", (event) => {
  const target = event.target;
  if (!plan.data || !target.dataset || target.dataset.object === undefined) return;
  event.preventDefault();
  $("#player").pause();
  const n = Number(target.dataset.object);
  const frame = target.classList.contains("end") ? plan.data.canvas.frames - 1 : currentFrame();
  plan.drag = { n, frame, from: toCanvas(event) };
  $("#plan-overlay").setPointerCapture(event.pointerId);
});
$("#plan-overlay").addEventListener("pointermove", (event) => {
  if (!plan.drag) return;
  const at = toCanvas(event);
  moveTrack(plan.drag.n, plan.drag.frame, [at[0] - plan.drag.from[0], at[1] - plan.drag.from[1]]);
  plan.drag.from = at;
  plan.moved = true;
  drawPlan();
});
$("#plan-overlay").addEventListener("pointerup", () => {
  if (!plan.drag) return;
  plan.drag = null;
  $("#regen-go").disabled = !plan.moved;
  drawPlan();
});

function movedPlan() {
  const round = (v) => Math.round(v * 1e6) / 1e6;
  const objects = plan.data.objects.map((o, n) => {
    const { keyframes, boxes, ...rest } = o;
    return { ...rest, boxes: plan.tracks[n].map((b) => b.map(round)) };
  });
  return { ...plan.data, objects };
}

$("#regen-go").addEventListener("click", () => {
  const video = plan.video;
  const { width, height, fps, frames } = plan.data.canvas;
  edit($("#regen-go"), "/v1/videos", {
    prompt: video.prompt, size: `${width}x${height}`, fps, seconds: frames / fps,
    model: video.cinepatch.requested_model || $("#model").value,
    seed: video.cinepatch.seed, plan: movedPlan(),
  });
});
