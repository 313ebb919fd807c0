"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const SEVS = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"];
const STATUS = {F: "FAILED", E: "ERROR", P: "PASSED", N: "NOT_APPLICABLE"};
const CODE = {FAILED: "F", ERROR: "E", PASSED: "P", NOT_APPLICABLE: "N"};
const SVGNS = "http" + "://www.w3.org/2000/svg";
const KEYS = ["sev", "status", "rule", "account", "cluster", "q"];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k === "cls") e.className = v; else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}
function sv(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function sevBadge(s) { return el("span", {cls: "sev sev-" + s, text: s}); }
function wlOf(t) { return D.workloads[t.w]; }
// a cluster's filter value: its name, or account/region/name when clusters of that name
// are in several accounts or regions (an organization scan)
const CLUSTER_PLACES = new Map();
for (const w of D.workloads) {
  const places = CLUSTER_PLACES.get(w.cluster) || new Set();
  places.add(w.account + "/" + w.region); CLUSTER_PLACES.set(w.cluster, places);
}
function clusterKey(w) { return CLUSTER_PLACES.get(w.cluster).size > 1 ? w.account + "/" + w.region + "/" + w.cluster : w.cluster; }

// ------------------------------------------------------------------ summary
function table(head, rows) {
  const t = el("table");
  t.append(el("thead", {}, el("tr", {}, ...head.map(h => el("th", {text: h})))));
  const b = el("tbody");
  for (const r of rows) b.append(el("tr", {}, ...r.map(c => c instanceof Node ? el("td", {}, c) :
    el("td", {cls: typeof c === "number" ? "num" : "", text: String(c)}))));
  t.append(b);
  return t;
}
function setFilter(key, value) {
  const s = {}; s[key] = value; applyState(s, true);
  document.getElementById("filters").scrollIntoView();
}
function link(text, key, value) {
  const a = el("button", {cls: "linkish", type: "button", text: text});
  a.addEventListener("click", () => setFilter(key, value));
  return a;
}
function renderSummary() {
  const S = D.summary, root = document.getElementById("summary");
  const scope = D.scope || {};
  document.getElementById("meta").textContent = "Generated " + (D.generated_at || "?") + " \u00b7 accounts " +
    (scope.accounts || []).join(", ") + " \u00b7 regions " + (scope.regions || []).join(", ") + " \u00b7 " +
    S.tasks + " tasks audited, " + S.skipped_tasks + " skipped";
  const cards = el("div", {cls: "cards"});
  // each card is a link that sets its filter (the status; the severity, with FAILED)
  const card = (key, value, ...kids) => {
    const c = el("div", {cls: "card linkcard", role: "button", tabindex: "0"}, ...kids);
    c.addEventListener("click", () => setFilter(key, value));
    c.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); setFilter(key, value); } });
    return c;
  };
  for (const [k, v] of Object.entries(S.by_status)) cards.append(card("status", k, el("b", {cls: k, text: String(v)}), k + " results"));
  for (const [k, v] of Object.entries(S.failed_by_severity)) cards.append(card("sev", k, el("b", {text: String(v)}), sevBadge(k), " failed"));
  const ir = S.internet_reachable || {};
  root.append(el("h2", {text: "Summary"}), cards);
  // what to look at first
  const first = el("ul", {cls: "first"});
  const items = [["direct", "Reachable from the internet at their own address (NET-02)"],
    ["doors", "Reachable through load balancers"], ["secrets", "Plain-text secrets (names only; CFG-02)"],
    ["egress", "Uninspected egress (NET-05)"]];
  for (const [kind, label] of items) {
    const list = D.first[kind] || [];
    const li = el("li", {}, el("b", {text: label + ": "}), list.length ? "" : "none");
    const inner = el("ul");
    for (const [w, what] of list) inner.append(el("li", {}, link(w, "q", w), " " + what));
    if (list.length) li.append(inner);
    first.append(li);
  }
  const unknownReach = [[ir.direct_unknown, "directly"], [ir.through_load_balancers_unknown, "through load balancers"]]
    .filter(([n]) => n).map(([n, how]) => n + " " + how).join(", ");
  root.append(el("h2", {text: "What to look at first (" + (ir.direct || 0) + " tasks reachable directly, " +
    (ir.through_load_balancers || 0) + " through load balancers" + (unknownReach ? "; unknown: " + unknownReach : "") + ")"}), first);
  if ((D.expired || []).length) {  // exemptions past their date: ignored by the scan
    const list = el("ul", {cls: "expired"});
    for (const [rule, workload, expires] of D.expired) list.append(el("li", {}, link(rule, "rule", rule), " " + workload + " expired " + expires));
    root.append(el("h2", {text: D.expired.length + " expired exemptions ignored"}), list);
  }
  // by rule
  const grid = el("div", {cls: "grid"});
  const byRule = D.rules.map(([id, title, sev]) => {
    const c = S.by_rule[id] || {};
    return [link(id, "rule", id), title, sevBadge(sev), c.FAILED || 0, c.ERROR || 0, c.PASSED || 0, c.NOT_APPLICABLE || 0];
  });
  grid.append(el("div", {}, el("h2", {text: "By rule"}), table(["Rule", "Title", "Severity", "Failed", "Error", "Passed", "N/A"], byRule)));
  const place = new Map(), cluster = new Map();
  for (const t of D.tasks) {
    const w = wlOf(t), fails = [...t.r].filter(c => c === "F").length, errs = [...t.r].filter(c => c === "E").length;
    const pk = w.account + " " + w.region, ck = w.account + " " + w.region + " " + w.cluster;
    const p = place.get(pk) || [w.account, w.region, 0, 0, 0]; p[2]++; p[3] += fails; p[4] += errs; place.set(pk, p);
    const c = cluster.get(ck) || [w.cluster, w.account, w.region, 0, 0, 0, clusterKey(w)]; c[3]++; c[4] += fails; c[5] += errs; cluster.set(ck, c);
  }
  for (const [a, r, error] of D.scopes) {  // an organization scan: every (account, region) asked for
    const p = place.get(a + " " + r) || [a, r, 0, 0, 0]; p[5] = error; place.set(a + " " + r, p);
  }
  const errCell = n => n ? el("span", {cls: "s-E", text: String(n)}) : 0;
  grid.append(el("div", {}, el("h2", {text: "By account and region"}),
    table(["Account", "Region", "Tasks", "Failed results", "Error results", "Not scanned"], [...place.values()].map(([a, r, n, f, e, error]) =>
      [link(a, "account", a), r, error ? "-" : n, error ? "-" : f, error ? "-" : errCell(e), error ? el("span", {cls: "ERROR", text: error}) : ""]))));
  grid.append(el("div", {}, el("h2", {text: "By cluster"}),
    table(["Cluster", "Account", "Region", "Tasks", "Failed results", "Error results"], [...cluster.values()].map(([c, a, r, n, f, e, key]) => [link(c, "cluster", key), a, r, n, f, errCell(e)]))));
  root.append(grid);
  const refused = D.scopes.filter(([, , error]) => error);
  if (refused.length || D.errors_total) {
    root.append(el("h2", {cls: "ERROR", text: "Not read: " + refused.length + " account and region scopes, " +
      D.errors_total + " parts of the scope (their tasks are not in this report)"}));
    const list = el("ul", {cls: "errors"});
    for (const [a, r, error] of refused) list.append(el("li", {}, el("b", {text: a + " " + r + ": "}), error));
    for (const [call, region, message] of D.errors) list.append(el("li", {}, el("b", {text: call + " (" + region + "): "}), message));
    if (D.errors_total > D.errors.length) list.append(el("li", {text: (D.errors_total - D.errors.length) + " more in the JSON report's errors"}));
    root.append(list);
  }
}

// ------------------------------------------------------------------ filters
const state = {sev: "", status: "", rule: "", account: "", cluster: "", q: ""};
function fillSelect(id, values, label) {
  const s = document.getElementById(id);
  s.append(el("option", {value: "", text: "any " + label}));
  for (const v of values) s.append(el("option", {value: v, text: v}));
}
function setupFilters() {
  fillSelect("f-sev", SEVS, "severity");
  fillSelect("f-status", Object.values(STATUS), "status");
  fillSelect("f-rule", D.rules.map(r => r[0]), "rule");
  fillSelect("f-account", [...new Set(D.workloads.map(w => w.account).concat(D.scopes.map(s => s[0])))].sort(), "account");
  fillSelect("f-cluster", [...new Set(D.workloads.map(clusterKey))].sort(), "cluster");
  for (const key of KEYS) {
    const input = document.querySelector('[data-key="' + key + '"]');
    input.addEventListener(key === "q" ? "input" : "change", () => { state[key] = input.value; applyState(null, true); });
  }
  document.getElementById("f-clear").addEventListener("click", () => applyState({}, true));
  document.getElementById("f-expand").addEventListener("click", () => {
    // built here, not on the toggle event (which fires later): expanded means rendered
    for (const d of document.querySelectorAll("details.workload")) {
      if (d.hidden) continue;
      if (!d._built) buildWorkload(d, d._w);
      d.open = true;
    }
  });
  window.addEventListener("hashchange", () => applyState(readHash(), false));
}
function readHash() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const s = {};
  for (const k of KEYS) if (params.get(k)) s[k] = params.get(k);
  return s;
}
function writeHash() {
  const params = new URLSearchParams();
  for (const k of KEYS) if (state[k]) params.set(k, state[k]);
  const text = params.toString();
  history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
}
function searchText(t) {
  if (t._text === undefined) {
    const w = wlOf(t);
    t._text = [w.name, t.id, t.arn, t.td, ...t.sg, ...t.img].join("\n").toLowerCase();
  }
  return t._text;
}
function matches(t) {
  const w = wlOf(t);
  if (state.account && w.account !== state.account) return false;
  if (state.cluster && clusterKey(w) !== state.cluster) return false;
  if (state.q && !searchText(t).includes(state.q.toLowerCase())) return false;
  if (state.sev || state.status || state.rule) {
    let hit = false;
    for (let i = 0; i < D.rules.length && !hit; i++) {
      const [id, , sev] = D.rules[i], code = t.r[i];
      if (code === "-") continue;
      if (state.rule && id !== state.rule) continue;
      if (state.sev && sev !== state.sev) continue;
      if (state.status ? code !== CODE[state.status] : (state.sev && code !== "F")) continue;
      hit = true;
    }
    if (!hit) return false;
  }
  return true;
}
function applyState(s, write) {
  if (s) for (const k of KEYS) state[k] = s[k] || "";
  for (const k of KEYS) {
    const input = document.querySelector('[data-key="' + k + '"]');
    if (input.value !== state[k]) {
      input.value = state[k];
      if (input.value !== state[k]) { input.value = ""; state[k] = ""; }  // not an option here
    }
  }
  if (write) writeHash();
  let shown = 0, shownWl = 0;
  D.workloads.forEach((w, i) => {
    const visible = w.tasks.filter(ti => matches(D.tasks[ti]));
    const node = document.getElementById("w" + i);
    node.hidden = visible.length === 0;
    node._visible = new Set(visible);
    node.querySelector(".wcount").textContent = visible.length === w.tasks.length ?
      w.tasks.length + " task" + (w.tasks.length === 1 ? "" : "s") : visible.length + " of " + w.tasks.length + " tasks match";
    for (const row of node.querySelectorAll("details.task")) row.hidden = !node._visible.has(Number(row.dataset.index));
    shown += visible.length; if (visible.length) shownWl++;
  });
  document.getElementById("f-count").textContent = shown + " of " + D.tasks.length + " tasks, " + shownWl + " workloads";
}

// ------------------------------------------------------------------ workloads and tasks
function worstOf(w) {
  const order = ["F", "E", "P", "N"];
  let worst = "N", worstSev = -1;
  for (const [ri, code] of w.rules) {
    if (order.indexOf(code) < order.indexOf(worst)) worst = code;
    if (code === "F") worstSev = Math.max(worstSev, 4 - SEVS.indexOf(D.rules[ri][2]));
  }
  return [worst, worstSev >= 0 ? SEVS[4 - worstSev] : null];
}
function renderWorkloads() {
  const root = document.getElementById("workloads");
  root.append(el("h2", {text: "Workloads"}));
  const frag = document.createDocumentFragment();
  D.workloads.forEach((w, i) => {
    const [worst, sev] = worstOf(w);
    const failed = w.rules.filter(r => r[1] === "F").length, errors = w.rules.filter(r => r[1] === "E").length;
    const summary = el("summary", {},
      el("b", {text: w.name}), " ", el("span", {cls: "muted", text: w.account + " " + w.region}), " \u00b7 ",
      el("span", {cls: "wcount"}), " \u00b7 ",
      el("span", {cls: "s-" + worst, text: failed ? failed + " rules failed" : STATUS[worst]}),
      failed && errors ? el("span", {cls: "s-E", text: ", " + errors + " ERROR"}) : "", " ",
      sev ? sevBadge(sev) : "");
    const d = el("details", {cls: "workload", id: "w" + i, "data-workload": w.name}, summary);
    d._w = w;
    d.addEventListener("toggle", () => { if (d.open && !d._built) buildWorkload(d, w); });
    frag.append(d);
  });
  root.append(frag);
}
function buildWorkload(d, w) {
  d._built = true;
  const body = el("div");
  const rows = w.rules.map(([ri, code, ev, n, fid]) => [el("span", {cls: "mono", text: D.rules[ri][0]}), D.rules[ri][1],
    sevBadge(D.rules[ri][2]), el("span", {cls: "s-" + code, text: STATUS[code] + " (" + n + "/" + w.tasks.length + ")"}),
    D.ev[ev], el("span", {cls: "mono", text: fid})]);
  body.append(el("h3", {text: "Rules"}), table(["Rule", "Title", "Severity", "Status (tasks)", "Evidence", "Finding id"], rows));
  body.append(el("h3", {text: "Tasks"}));
  for (const ti of w.tasks) {
    const t = D.tasks[ti];
    const fails = [...t.r].filter(c => c === "F").length, errors = [...t.r].filter(c => c === "E").length;
    const td = el("details", {cls: "task", "data-task": t.id, "data-index": String(ti)},
      el("summary", {}, el("span", {cls: "mono", text: t.id}), " ", el("span", {cls: "muted", text: t.td}), " \u00b7 ",
        (t.pub ? "public " + t.pub : t.v6.length ? "public " + t.v6[0] : "private " + (t.priv || "?")), " \u00b7 ",
        el("span", {cls: fails ? "s-F" : errors ? "s-E" : "s-P", text: fails + " failed"}),
        errors ? el("span", {cls: "s-E", text: ", " + errors + " ERROR"}) : ""));
    td.hidden = d._visible ? !d._visible.has(ti) : false;
    td.addEventListener("toggle", () => { if (td.open && !td._built) buildTask(td, t); });
    body.append(td);
  }
  d.append(body);
}
function buildTask(td, t) {
  td._built = true;
  const info = el("div", {cls: "mono"});
  info.append(el("div", {text: "task " + t.arn}), el("div", {text: "ENI " + (t.eni || "none") + " \u00b7 private " + (t.priv || "-") +
    " \u00b7 public " + (t.pub || "-") + (t.v6.length ? " \u00b7 ipv6 " + t.v6.join(", ") : "")}),
    el("div", {text: "security groups " + (t.sg.join(", ") || "-")}), el("div", {text: "images " + (t.img.join(", ") || "-")}));
  td.append(info);
  const pic = el("div", {cls: "pic"});
  pic.append(drawPicture(D.pics[t.p], t));
  td.append(pic);
  if (t.n.length) td.append(table(["Rule", "Status", "Evidence"], t.n.map(([ri, code, ev]) =>
    [D.rules[ri][0] + " " + D.rules[ri][1], el("span", {cls: "s-" + code, text: STATUS[code]}), D.ev[ev]])));
}

// ------------------------------------------------------------------ the drawn path
const BOX_W = 214, GAP = 30, LABEL_W = 96, LINE_H = 14, MAX_CH = 35;
function clip(s, max = MAX_CH) { return s.length > max ? s.slice(0, max - 1) + "\u2026" : s; }
function drawPicture(rows, t) {
  const heights = rows.map(r => Math.max(...r.nodes.map(n => 34 + LINE_H * (linesOf(n, t).length + (n.m.length ? 1 : 0)))));
  const width = LABEL_W + Math.max(...rows.map(r => r.nodes.length)) * (BOX_W + GAP);
  const height = heights.reduce((a, b) => a + b + 14, 6);
  const svg = sv("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
    "aria-label": "network path of task " + t.id, class: "path"});
  let y = 6;
  rows.forEach((row, ri) => {
    const g = sv("g", {"data-row": row.label, class: row.ok ? "row row-ok" : "row row-bad"});
    g.append(sv("text", {x: 4, y: y + 18, class: "label"}, row.label));
    row.nodes.forEach((n, i) => {
      const x = LABEL_W + i * (BOX_W + GAP), h = heights[ri];
      if (i > 0) {
        g.append(sv("line", {x1: x - GAP + 2, y1: y + 18, x2: x - 6, y2: y + 18, class: "arrow" + (row.ok ? "" : " badpath")}));
        g.append(sv("path", {d: "M" + (x - 6) + " " + (y + 14) + " L" + (x - 1) + " " + (y + 18) + " L" + (x - 6) + " " + (y + 22) + " Z", fill: row.ok ? "#57606a" : "#c62828"}));
      }
      const node = sv("g", {class: "hop", "data-kind": n.k, "data-marks": n.m.join(" ")});
      node.append(sv("title", {}, [n.t, ...linesOf(n, t).map(l => l[0]), ...n.m.map(m => "fails " + m)].join("\n")));
      node.append(sv("rect", {x: x, y: y, width: BOX_W, height: h, rx: 6, class: "node" + (n.m.length ? " marked" : "")}));
      node.append(sv("text", {x: x + 8, y: y + 16, class: "t"}, clip(n.t, MAX_CH - 3)));  // bold: wider
      let ly = y + 31;
      for (const [text, bad] of linesOf(n, t)) {
        node.append(sv("text", {x: x + 8, y: ly, class: bad ? "bad" : ""}, clip(text)));
        ly += LINE_H;
      }
      if (n.m.length) node.append(sv("text", {x: x + 8, y: ly, class: "bad t mark"}, "\u26a0 fails " + n.m.join(", ")));
      g.append(node);
    });
    svg.append(g);
    y += heights[ri] + 14;
  });
  return svg;
}
function linesOf(n, t) {
  if (n.k !== "eni" || n.t !== "Task ENI") return n.l;
  const lines = [[t.eni || "?", false], ["private " + (t.priv || "-"), false]];
  if (t.pub) lines.push(["public " + t.pub, n.m.includes("NET-01")]);
  for (const a of t.v6) lines.push([a, n.m.includes("NET-01")]);
  return lines;
}

renderSummary();
setupFilters();
renderWorkloads();
applyState(readHash(), false);
