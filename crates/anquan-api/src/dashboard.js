"use strict";
const HEADLINES = [
  ["enterpriseResponsibilityRate", "企业主体落实率", "#1565c0", "enterprise_responsibility_rate"],
  ["principalAndSafetyOfficerTrainingRate", "负责人、安管员培训率", "#2e7d32", "principal_and_safety_officer_training_rate"],
  ["emergencyDrillCompletionRate", "应急演练完成率", "#f57c00", "emergency_drill_completion_rate"],
  ["socialServiceCoverage", "社会化服务覆盖率", "#6a1b9a", "social_service_coverage"],
  ["serviceCoverageOver5mRevenue", "500万以上企业服务覆盖率", "#00838f", "service_coverage_over_5m_revenue"],
];
let token = "";
let catalogue = [];
let periods = {};
const AS_OF = new URLSearchParams(location.search).get("asOf");

function fmt(v, unit) {
  if (v === null || v === undefined) return "—";
  return unit === "PERCENT" ? v.toFixed(1) + "%" : (Number.isInteger(v) ? String(v) : v.toFixed(2));
}
// Escapes text for element content and for quoted attribute values alike.
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function gql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", "authorization": "Bearer " + token },
    body: JSON.stringify({ query, variables: variables || {} }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(body.errors.map(e => e.message).join("; "));
  return body.data;
}

// The token is read from the login form and kept in this variable only: never in the URL,
// storage or a cookie, so it is gone when the page is closed.
function start() {
  const input = document.getElementById("token");
  token = input.value.trim();
  input.value = "";
  if (!token) return false;
  document.body.dataset.state = "loading";
  load().then(() => { document.body.dataset.state = "ready"; })
    .catch(error => {
      document.body.dataset.state = "error";
      document.getElementById("message").textContent = "无法读取数据：" + error.message;
    });
  return false;
}

async function load() {
  document.getElementById("message").textContent = "";
  const data = await gql(`query($at: DateTime) { metricCatalogue { code nameZh unit cityOnly headline }
    headlineRates(asOf: $at) { at enterpriseResponsibilityRate principalAndSafetyOfficerTrainingRate emergencyDrillCompletionRate socialServiceCoverage serviceCoverageOver5mRevenue }
    cityMetrics(asOf: $at) { metrics { code period { label } } }
    allTownMetrics(asOf: $at) { town metrics { code value numerator } } }`, { at: AS_OF });
  // Which stretch of time each figure covers (cadence metrics: the latest completed period).
  periods = Object.fromEntries(data.cityMetrics.metrics.map(m => [m.code, m.period.label]));
  catalogue = data.metricCatalogue;
  document.getElementById("at").textContent = "数据时点：" + new Date(data.headlineRates.at).toLocaleString("zh-CN");
  const periodOf = headline => periods[(catalogue.find(m => m.headline === headline) || {}).code] || "";
  document.getElementById("rates").innerHTML = HEADLINES.map(([key, name, , headline]) =>
    `<div class="rate" data-rate="${key}" data-testid="rate-${key}"><div class="v" data-testid="rate-value">${fmt(data.headlineRates[key], "PERCENT")}</div><div class="n">${name}</div><div class="p" data-testid="rate-period">${esc(periodOf(headline))}</div></div>`).join("");
  const select = document.getElementById("metric");
  if (!select.options.length) {
    select.innerHTML = catalogue.filter(m => !m.cityOnly)
      .map(m => `<option value="${esc(m.code)}">${esc(m.code)} ${esc(m.nameZh)}</option>`).join("");
    select.value = "B02";
  }
  drawColours(data.allTownMetrics);
  drawRectification(data.allTownMetrics);
  await loadRanking();
  await loadTrend();
}

async function loadRanking() {
  const code = document.getElementById("metric").value;
  const unit = (catalogue.find(m => m.code === code) || {}).unit;
  const data = await gql(`query($m: String!, $at: DateTime) { townRanking(metric: $m, asOf: $at) { rank town value change period { label } } }`, { m: code, at: AS_OF });
  document.getElementById("metric-period").textContent = data.townRanking.length ? "统计期：" + data.townRanking[0].period.label : "";
  document.querySelector("#ranking tbody").innerHTML = data.townRanking.map(r => {
    const change = r.change === null ? "—" : (r.change > 0 ? `<span class="up">▲ ${r.change}</span>` : r.change < 0 ? `<span class="down">▼ ${-r.change}</span>` : "持平");
    return `<tr data-town="${esc(r.town)}" data-testid="ranking-row"><td data-testid="rank">${r.rank ?? "—"}</td><td data-testid="town">${esc(r.town)}</td><td class="value" data-testid="value">${fmt(r.value, unit)}</td><td>${change}</td></tr>`;
  }).join("");
}

function value(town, code) {
  const m = town.metrics.find(x => x.code === code);
  return m ? m.value : null;
}

function svgBars(svg, rows, series, max, suffix) {
  const width = svg.clientWidth || 560, height = +svg.getAttribute("height");
  const left = 64, right = 16, top = 10, rowH = (height - top - 10) / Math.max(rows.length, 1);
  let out = "";
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    out += `<text x="${left - 6}" y="${y + rowH * 0.65}" text-anchor="end" font-size="13">${esc(row.label)}</text>`;
    let x = left;
    series.forEach(([key, colour]) => {
      const v = row[key] || 0;
      const w = max > 0 ? (width - left - right - 40) * v / max : 0;
      out += `<rect x="${x}" y="${y + 3}" width="${w}" height="${rowH - 6}" fill="${colour}"><title>${v}</title></rect>`;
      x += w;
    });
    out += `<text x="${x + 4}" y="${y + rowH * 0.65}" font-size="12" fill="#616e7c" class="bar-value">${row.text}${suffix}</text>`;
  });
  svg.innerHTML = out;
}

function drawColours(towns) {
  const rows = towns.map(t => ({ label: t.town, red: value(t, "F01"), orange: value(t, "F02"), yellow: value(t, "F03"), blue: value(t, "F04") }))
    .map(r => Object.assign(r, { total: r.red + r.orange + r.yellow + r.blue, text: "" }));
  rows.forEach(r => r.text = `${r.red}/${r.orange}/${r.yellow}/${r.blue}`);
  const max = Math.max(1, ...rows.map(r => r.total));
  svgBars(document.getElementById("colours"), rows, [["red", "#d32f2f"], ["orange", "#f57c00"], ["yellow", "#fbc02d"], ["blue", "#1976d2"]], max, "");
}

function drawRectification(towns) {
  const rows = towns.map(t => { const v = value(t, "E08"); return { label: t.town, rate: v || 0, text: v === null ? "—（无隐患）" : v.toFixed(1) + "%" }; });
  svgBars(document.getElementById("rectification"), rows, [["rate", "#2e7d32"]], 100, "");
}

async function loadTrend() {
  const now = AS_OF ? new Date(AS_OF) : new Date();
  const instants = [];
  for (let i = 5; i >= 0; i--) {
    const d = new Date(now.getFullYear(), now.getMonth() - i + 1, 1);
    instants.push(i === 0 ? AS_OF : new Date(d.getTime() - 1000).toISOString());
  }
  const fields = "enterpriseResponsibilityRate principalAndSafetyOfficerTrainingRate emergencyDrillCompletionRate socialServiceCoverage serviceCoverageOver5mRevenue";
  // Instants travel as variables, never spliced into the document.
  const query = "query(" + instants.map((_, i) => `$a${i}: DateTime`).join(", ") + ") {"
    + instants.map((_, i) => `m${i}: headlineRates(asOf: $a${i}) { at ${fields} }`).join(" ") + "}";
  const variables = {};
  instants.forEach((at, i) => { variables["a" + i] = at; });
  const data = await gql(query, variables);
  const points = instants.map((_, i) => data["m" + i]);
  const svg = document.getElementById("trend");
  const width = svg.clientWidth || 1100, height = +svg.getAttribute("height");
  const left = 48, right = 220, top = 12, bottom = 30;
  const x = i => left + (width - left - right) * i / Math.max(points.length - 1, 1);
  const y = v => top + (height - top - bottom) * (1 - v / 100);
  let out = "";
  for (let g = 0; g <= 100; g += 25) {
    out += `<line x1="${left}" x2="${width - right}" y1="${y(g)}" y2="${y(g)}" stroke="#d9e2ec"/><text x="${left - 6}" y="${y(g) + 4}" text-anchor="end" font-size="12">${g}</text>`;
  }
  points.forEach((p, i) => {
    const d = new Date(p.at);
    out += `<text x="${x(i)}" y="${height - 8}" text-anchor="middle" font-size="12">${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}</text>`;
  });
  HEADLINES.forEach(([key, name, colour], k) => {
    const path = points.map((p, i) => p[key] === null ? null : `${x(i)},${y(p[key])}`).filter(Boolean);
    if (path.length) out += `<polyline fill="none" stroke="${colour}" stroke-width="2.5" points="${path.join(" ")}"/>`;
    points.forEach((p, i) => { if (p[key] !== null) out += `<circle cx="${x(i)}" cy="${y(p[key])}" r="3.5" fill="${colour}"><title>${name} ${p[key]}%</title></circle>`; });
    out += `<rect x="${width - right + 14}" y="${top + k * 22}" width="12" height="12" fill="${colour}"/><text x="${width - right + 32}" y="${top + k * 22 + 11}" font-size="13">${name}</text>`;
  });
  svg.innerHTML = out;
}

document.getElementById("login").addEventListener("submit", event => { event.preventDefault(); start(); });
document.getElementById("metric").addEventListener("change", () => { loadRanking(); });
