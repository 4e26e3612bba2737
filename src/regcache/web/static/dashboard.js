/*
 * regcache dashboard: polls `api/stats` (relative to the page) every 2 seconds and renders it.
 * Plain JavaScript, no dependencies; the chart is drawn on a <canvas>.
 *
 * Every number is shown with one of the formatters below and its raw JSON value is kept in the
 * element's data-value attribute, so the text is derivable exactly from the JSON:
 *
 *   formatPercent(r)  (r * 100).toFixed(1) + "%"                          0.6667 -> "66.7%"
 *   formatBytes(n)    SI units (1 kB = 1000 B, like cache_size "10GB"):
 *                     n < 1000 -> n + " B"; otherwise n / 1000^k with one decimal (toFixed(1))
 *                     and the unit kB, MB, GB, TB, PB, taking k as the largest with
 *                     n >= 1000^k (or the next one if the rounded value reads 1000.0)
 *                                                                         1536 -> "1.5 kB"
 *   formatCount(n)    integer with "," between groups of three digits   12345 -> "12,345"
 *   formatDuration(s) whole seconds as "45s", "3m 07s", "2h 05m", "3d 04h"
 *   formatSeconds(s)  Math.ceil(s) + " s" (rate-limit wait)                 42.1 -> "43 s"
 *
 * The chart merges the server's `history` (a sample every 5 s, oldest first, assumed to be
 * cumulative counters like the top-level fields) with a sample taken at each poll.
 */
"use strict";

(() => {
  const STATS_URL = "api/stats";
  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const TOP_ROWS = 10;
  const GAP_SECONDS = 30; // a longer pause between samples breaks the chart's lines
  const WINDOW_KEY = "regcache.dashboard.window";
  const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

  // ---- formatters ------------------------------------------------------------------------

  function formatPercent(ratio) {
    return (ratio * 100).toFixed(1) + "%";
  }

  function formatBytes(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "–";
    if (Math.abs(n) < 1000) return String(n) + " B";
    let k = 1;
    while (k < BYTE_UNITS.length - 1 && Math.abs(n) >= Math.pow(1000, k + 1)) k++;
    let text = (n / Math.pow(1000, k)).toFixed(1);
    if (Math.abs(Number(text)) >= 1000 && k < BYTE_UNITS.length - 1) {
      k++;
      text = (n / Math.pow(1000, k)).toFixed(1);
    }
    return text + " " + BYTE_UNITS[k];
  }

  function formatCount(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "–";
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  function formatDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${pad2(h)}h`;
    if (h > 0) return `${h}h ${pad2(m)}m`;
    if (m > 0) return `${m}m ${pad2(s % 60)}s`;
    return `${s}s`;
  }

  function formatSeconds(seconds) {
    return `${Math.ceil(seconds)} s`;
  }

  function formatClock(epochSeconds, withSeconds) {
    const d = new Date(epochSeconds * 1000);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return withSeconds ? `${hm}:${pad2(d.getSeconds())}` : hm;
  }

  function formatDateTime(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      formatClock(epochSeconds, true);
  }

  function formatAgo(epochSeconds) {
    const s = Date.now() / 1000 - epochSeconds;
    if (s < 10) return "just now";
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function shortDigest(digest) {
    const [algorithm, hex] = String(digest).split(":", 2);
    return hex ? `${algorithm}:${hex.slice(0, 12)}` : String(digest);
  }

  // ---- DOM helpers -------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

  /** A new element; `attrs` may hold className, text, dataset entries (data-*) and attributes. */
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === "className") el.className = value;
      else if (name === "text") el.textContent = value;
      else el.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) el.append(child);
    }
    return el;
  }

  /** Show `text` and keep the raw value in data-value. */
  function setValue(el, raw, text) {
    if (!el) return;
    el.textContent = text;
    el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  }

  function setTestValue(id, raw, text) {
    setValue(byTestId(id), raw, text);
  }

  function imageRef(item, withDigest = true) {
    const ref = h("span", { className: "image-ref" });
    ref.append(h("span", { className: "registry", text: `${item.upstream}/` }));
    ref.append(document.createTextNode(item.repository));
    if (item.tag) ref.append(h("span", { className: "ref-tag", text: `:${item.tag}` }));
    else if (item.digest && withDigest) ref.append(h("span", { className: "muted", text: `@${shortDigest(item.digest)}` }));
    const full = `${item.upstream}/${item.repository}` +
      (item.tag ? `:${item.tag}` : item.digest ? `@${item.digest}` : "");
    ref.title = item.digest && item.tag ? `${full}\n${item.digest}` : full;
    return ref;
  }

  // ---- state -------------------------------------------------------------------------------

  const state = {
    stats: null,
    renders: 0,
    lastSuccess: null, // Date.now() of the last good answer
    timer: null,
    inFlight: false,
    history: [], // server samples, oldest first: {t, ratio, saved, upstream}
    live: [], // samples taken at each poll after the last server sample
    anchor: null, // {t: last server sample time, at: performance.now() when first seen}
    uptime: null,
    windowSeconds: 900,
    hover: null, // x in CSS pixels over the chart, or null
  };

  // ---- polling -----------------------------------------------------------------------------

  function schedule(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, delay);
  }

  async function poll() {
    if (state.inFlight) return;
    state.inFlight = true;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    let stats = null;
    let failure = null;
    try {
      const response = await fetch(STATS_URL, {
        cache: "no-store",
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      if (!response.ok) {
        failure = `GET /api/stats answered HTTP ${response.status}` +
          (response.statusText ? ` ${response.statusText}` : "") + ".";
      } else {
        try {
          stats = await response.json();
        } catch (err) {
          failure = "GET /api/stats answered something that is not JSON.";
        }
        if (stats !== null && (typeof stats !== "object" || !stats.cache || !stats.requests)) {
          failure = "GET /api/stats answered JSON without the expected fields.";
          stats = null;
        }
      }
    } catch (err) {
      failure = controller.signal.aborted
        ? `GET /api/stats did not answer within ${FETCH_TIMEOUT_MS / 1000} s.`
        : "The server cannot be reached (network error).";
    } finally {
      clearTimeout(timeout);
      state.inFlight = false;
    }
    if (stats !== null) {
      try {
        render(stats);
        setConnected();
      } catch (err) {
        console.error("regcache dashboard: could not render /api/stats", err);
        setLost("The stats could not be displayed (see the browser console).");
      }
    } else {
      setLost(failure);
    }
    schedule(POLL_MS);
  }

  function setConnected() {
    state.lastSuccess = Date.now();
    const status = byTestId("connection-status");
    status.dataset.state = "live";
    $(".status-text", status).textContent = "Live";
    byTestId("connection-lost").hidden = true;
    document.body.classList.remove("stale");
    document.title = "regcache";
  }

  function setLost(reason) {
    const status = byTestId("connection-status");
    status.dataset.state = "lost";
    $(".status-text", status).textContent = "Connection lost";
    byTestId("connection-error").textContent = reason;
    byTestId("stale-since").textContent = state.lastSuccess === null
      ? "no successful update yet"
      : formatDateTime(state.lastSuccess / 1000);
    byTestId("connection-lost").hidden = false;
    document.body.classList.add("stale");
    document.title = "Connection lost · regcache";
  }

  // ---- rendering ---------------------------------------------------------------------------

  function render(stats) {
    state.stats = stats;
    renderHeader(stats);
    renderRequests(stats);
    renderBytes(stats);
    renderCache(stats);
    renderDownloads(stats);
    renderUpstreams(stats);
    renderTopImages(stats);
    updateSeries(stats);
    drawChart();
    state.renders += 1;
    document.body.dataset.renders = String(state.renders);
  }

  function renderHeader(stats) {
    setTestValue("version", stats.version, `v${stats.version}`);
    setTestValue("uptime", stats.uptime_seconds, formatDuration(stats.uptime_seconds));
    const now = Date.now() / 1000;
    setTestValue("last-updated", now, formatClock(now, true));
  }

  function renderRequests(stats) {
    const r = stats.requests;
    setTestValue("hit-ratio", stats.hit_ratio, formatPercent(stats.hit_ratio));
    setTestValue("requests-hits", r.hits, formatCount(r.hits));
    setTestValue("requests-misses", r.misses, formatCount(r.misses));
    setTestValue("requests-coalesced", r.coalesced, formatCount(r.coalesced));
    setTestValue("requests-stale", r.stale, formatCount(r.stale));
    const total = r.hits + r.misses + r.coalesced + r.stale;
    const bar = byTestId("requests-bar");
    for (const kind of ["hits", "coalesced", "stale", "misses"]) {
      $(`.seg-${kind}`, bar).style.width = total > 0 ? `${(r[kind] / total) * 100}%` : "0";
    }
    bar.title = `${formatCount(total)} requests`;
  }

  function renderBytes(stats) {
    const served = stats.bytes_served;
    setTestValue("bytes-saved", stats.bytes_saved, formatBytes(stats.bytes_saved));
    setTestValue("bytes-served-cache", served.cache, formatBytes(served.cache));
    setTestValue("bytes-served-upstream", served.upstream, formatBytes(served.upstream));
    const total = served.cache + served.upstream;
    const share = total > 0 ? served.cache / total : 0;
    setTestValue("bytes-cache-share", share, formatPercent(share));
  }

  function renderCache(stats) {
    const c = stats.cache;
    setTestValue("cache-size", c.size_bytes, formatBytes(c.size_bytes));
    setTestValue("cache-budget", c.budget_bytes, formatBytes(c.budget_bytes));
    const fill = c.budget_bytes > 0 ? c.size_bytes / c.budget_bytes : 0;
    setTestValue("cache-fill", fill, formatPercent(fill));
    setTestValue("cache-blobs", c.blobs, formatCount(c.blobs));
    setTestValue("cache-manifests", c.manifests, formatCount(c.manifests));
    const meter = byTestId("cache-meter");
    meter.dataset.value = String(fill);
    meter.dataset.over = String(fill > 1);
    meter.setAttribute("aria-valuenow", (Math.min(fill, 1) * 100).toFixed(1));
    meter.title = `${formatBytes(c.size_bytes)} of ${formatBytes(c.budget_bytes)} ` +
      `(${formatPercent(fill)}); the least recently used content is evicted beyond the budget`;
    $(".meter-fill", meter).style.width = `${Math.min(fill, 1) * 100}%`;
  }

  function renderDownloads(stats) {
    const downloads = stats.downloads || [];
    setTestValue("downloads-count", downloads.length, formatCount(downloads.length));
    const readers = downloads.reduce((sum, d) => sum + d.readers, 0);
    const received = downloads.reduce((sum, d) => sum + d.received, 0);
    setTestValue("downloads-readers", readers, formatCount(readers));
    setTestValue("downloads-received", received, formatBytes(received));

    const rows = downloads.map((d) => {
      const sized = typeof d.size === "number" && d.size >= 0;
      const fraction = sized ? (d.size > 0 ? Math.min(d.received / d.size, 1) : 1) : null;
      const fill = h("div", { className: "progress-fill" });
      if (fraction !== null) fill.style.width = `${fraction * 100}%`;
      const track = h("div", { className: "progress-track" }, fill);
      const text = h("span", { className: "progress-text", "data-testid": "download-text" });
      if (sized) {
        text.append(
          h("b", { text: formatPercent(fraction) }),
          document.createTextNode(` · ${formatBytes(d.received)} of ${formatBytes(d.size)}`),
        );
      } else {
        text.append(h("b", { text: formatBytes(d.received) }), document.createTextNode(" · size unknown"));
      }
      const progress = h("div", {
        className: "progress",
        role: "progressbar",
        "aria-label": `Download of ${shortDigest(d.digest)}`,
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": fraction === null ? null : (fraction * 100).toFixed(1),
        "data-testid": "download-progress",
        "data-value": fraction === null ? "" : String(fraction),
        "data-received": d.received,
        "data-size": sized ? d.size : "",
        "data-indeterminate": String(fraction === null),
      }, track, text);
      return h("tr", { "data-testid": "download-row", "data-digest": d.digest },
        h("td", { className: "image-cell" }, imageRef(d, false)),
        h("td", { className: "digest digest-cell", title: d.digest, text: shortDigest(d.digest) }),
        h("td", {}, progress),
        h("td", { className: "r num", "data-testid": "download-readers", "data-value": d.readers,
          text: formatCount(d.readers) }),
      );
    });
    $("tbody", byTestId("downloads")).replaceChildren(...rows);
    $('[data-empty="downloads"]').hidden = rows.length > 0;
  }

  function renderUpstreams(stats) {
    const upstreams = stats.upstreams || [];
    setTestValue("upstreams-count", upstreams.length, formatCount(upstreams.length));
    const items = upstreams.map((u) => {
      const head = h("div", { className: "upstream-head" },
        h("span", { className: "upstream-name", text: u.name }));
      if (u.default) {
        head.append(h("span", { className: "upstream-default", text: "default",
          title: "Images without a registry name come from this upstream" }));
      }
      const badges = h("span", { className: "upstream-badges" });
      head.append(badges);
      badges.append(u.healthy
        ? h("span", { className: "badge badge-ok", "data-testid": "upstream-health",
          "data-state": "healthy", text: "healthy" })
        : h("span", { className: "badge badge-bad", "data-testid": "upstream-health",
          "data-state": "error", text: "error" }));
      if (u.rate_limited_for > 0) {
        badges.append(h("span", {
          className: "badge badge-warn",
          "data-testid": "upstream-rate-limit",
          "data-value": u.rate_limited_for,
          title: "The upstream answered 429; regcache serves cached content and waits before asking again",
          text: `rate limited for ${formatSeconds(u.rate_limited_for)}`,
        }));
      }
      const stats_ = h("div", { className: "upstream-stats" },
        h("span", { className: "num", "data-testid": "upstream-requests", "data-value": u.requests,
          text: formatCount(u.requests) }),
        document.createTextNode(u.requests === 1 ? " request · " : " requests · "),
        h("span", { className: "num", "data-testid": "upstream-bytes", "data-value": u.bytes,
          text: formatBytes(u.bytes) }));
      stats_.title = "requests sent to this upstream, and bytes received from it";
      const line = h("div", { className: "upstream-line" },
        h("span", { className: "upstream-url", title: u.url, text: u.url }), stats_);
      const item = h("li", { className: "upstream", "data-testid": "upstream", "data-name": u.name },
        head, line);
      if (u.last_error) {
        const text = u.healthy ? `last error: ${u.last_error}` : u.last_error;
        item.append(h("div", {
          className: u.healthy ? "upstream-error past" : "upstream-error",
          "data-testid": "upstream-error",
          title: text,
          text,
        }));
      }
      return item;
    });
    byTestId("upstreams").replaceChildren(...items);
    $('[data-empty="upstreams"]').hidden = items.length > 0;
  }

  function imageKey(i) {
    return `${i.upstream}/${i.repository}:${i.tag || ""}@${i.digest || ""}`;
  }

  /** The top images, by pulls or by size (ties: the other figure, then the name). */
  function topImages(images, by) {
    const other = by === "pulls" ? "size" : "pulls";
    return images.slice().sort((a, b) =>
      (b[by] || 0) - (a[by] || 0) || (b[other] || 0) - (a[other] || 0) ||
      (imageKey(a) < imageKey(b) ? -1 : imageKey(a) > imageKey(b) ? 1 : 0),
    ).slice(0, TOP_ROWS);
  }

  function renderTopImages(stats) {
    const images = stats.top_images || [];
    for (const [by, id] of [["pulls", "top-pulls"], ["size", "top-size"]]) {
      const rows = topImages(images, by).map((i) => {
        const pulls = h("td", { className: "r", "data-testid": "image-pulls", "data-value": i.pulls,
          text: formatCount(i.pulls) });
        const size = h("td", { className: "r", "data-testid": "image-size", "data-value": i.size,
          text: formatBytes(i.size) });
        const last = h("td", { className: "r muted", "data-testid": "image-last-pulled",
          "data-value": i.last_pulled,
          title: i.last_pulled ? formatDateTime(i.last_pulled) : "",
          text: i.last_pulled ? formatAgo(i.last_pulled) : "–" });
        const cells = by === "pulls" ? [pulls, size] : [size, pulls];
        return h("tr", { "data-testid": `${id}-row`, "data-image": imageKey(i) },
          h("td", { className: "image-cell" }, imageRef(i)), ...cells, last);
      });
      $("tbody", byTestId(id)).replaceChildren(...rows);
      $(`[data-empty="${id}"]`).hidden = rows.length > 0;
    }
  }

  // ---- chart data ----------------------------------------------------------------------------

  function updateSeries(stats) {
    // A restart empties the server's counters: start the live series again.
    if (state.uptime !== null && stats.uptime_seconds < state.uptime) {
      state.live = [];
      state.anchor = null;
    }
    state.uptime = stats.uptime_seconds;

    state.history = (stats.history || []).map((s) => ({
      t: s.time, ratio: s.hit_ratio, saved: s.bytes_saved, upstream: s.bytes_from_upstream,
    }));
    const last = state.history.length ? state.history[state.history.length - 1].t : null;
    // Place live samples on the server's clock: the time of its newest sample plus the time
    // elapsed here since that sample was first seen (no dependence on this machine's clock).
    if (last !== null && (state.anchor === null || state.anchor.t !== last)) {
      state.anchor = { t: last, at: performance.now() };
    }
    const now = state.anchor
      ? state.anchor.t + (performance.now() - state.anchor.at) / 1000
      : Date.now() / 1000;
    state.live = state.live.filter((p) => last === null || p.t > last);
    const previous = state.live.length ? state.live[state.live.length - 1].t : last;
    if (previous === null || now > previous) {
      state.live.push({
        t: now, ratio: stats.hit_ratio, saved: stats.bytes_saved,
        upstream: stats.bytes_served.upstream,
      });
    }
  }

  function series() {
    return state.history.concat(state.live);
  }

  // ---- chart drawing -------------------------------------------------------------------------

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  /** A round axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `value`. */
  function niceCeil(value) {
    if (value <= 0) return 1000;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  function timeStep(windowSeconds, width) {
    const wanted = Math.max(2, Math.floor(width / 110));
    for (const step of [15, 30, 60, 120, 300, 600, 900, 1800, 3600]) {
      if (windowSeconds / step <= wanted) return step;
    }
    return 3600;
  }

  function drawChart() {
    const canvas = byTestId("chart");
    const box = canvas.parentElement;
    const width = box.clientWidth;
    const height = box.clientHeight;
    if (width === 0 || height === 0) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const colors = {
      grid: cssVar("--chart-grid"), text: cssVar("--chart-text"), ratio: cssVar("--c-ratio"),
      saved: cssVar("--c-saved"), upstream: cssVar("--c-upstream"), card: cssVar("--card"),
    };
    const font = cssVar("--font") || "sans-serif";
    const plot = { left: 46, right: width - 62, top: 10, bottom: height - 24 };
    const plotW = plot.right - plot.left;
    const plotH = plot.bottom - plot.top;

    const points = series();
    const end = points.length ? points[points.length - 1].t : Date.now() / 1000;
    const start = end - state.windowSeconds;
    const firstIn = points.findIndex((p) => p.t >= start);
    const visible = firstIn === -1 ? [] : points.slice(Math.max(0, firstIn - 1));
    let maxBytes = 0;
    for (const p of visible) maxBytes = Math.max(maxBytes, p.saved || 0, p.upstream || 0);
    const bytesMax = niceCeil(maxBytes);

    const x = (t) => plot.left + ((t - start) / state.windowSeconds) * plotW;
    const yRatio = (r) => plot.bottom - Math.max(0, Math.min(1, r)) * plotH;
    const yBytes = (b) => plot.bottom - (Math.max(0, b) / bytesMax) * plotH;

    // Grid and axes.
    ctx.font = `11px ${font}`;
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(plot.top + (plotH * i) / 4) + 0.5;
      ctx.strokeStyle = colors.grid;
      ctx.beginPath();
      ctx.moveTo(plot.left, y);
      ctx.lineTo(plot.right, y);
      ctx.stroke();
      ctx.fillStyle = colors.text;
      ctx.textAlign = "right";
      ctx.fillText(`${100 - i * 25}%`, plot.left - 8, y);
      ctx.textAlign = "left";
      ctx.fillText(formatBytes(bytesMax * (1 - i / 4)).replace(".0 ", " "), plot.right + 8, y);
    }
    const step = timeStep(state.windowSeconds, plotW);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
      const px = x(t);
      if (px < plot.left + 16 || px > plot.right - 16) continue;
      ctx.strokeStyle = colors.grid;
      ctx.beginPath();
      ctx.moveTo(Math.round(px) + 0.5, plot.top);
      ctx.lineTo(Math.round(px) + 0.5, plot.bottom);
      ctx.stroke();
      ctx.fillStyle = colors.text;
      ctx.fillText(formatClock(t, step < 60), px, plot.bottom + 7);
    }

    canvas.dataset.points = String(visible.filter((p) => p.t >= start).length);
    if (visible.length === 0) {
      ctx.fillStyle = colors.text;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `13px ${font}`;
      ctx.fillText("Waiting for samples…", plot.left + plotW / 2, plot.top + plotH / 2);
      drawHover(null);
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top - 2, plotW, plotH + 4);
    ctx.clip();

    // Runs of samples without a long pause between them.
    const runs = [];
    for (const p of visible) {
      const run = runs[runs.length - 1];
      if (run && p.t - run[run.length - 1].t <= GAP_SECONDS) run.push(p);
      else runs.push([p]);
    }

    // Bytes saved: a filled area.
    for (const run of runs) {
      ctx.beginPath();
      ctx.moveTo(x(run[0].t), plot.bottom);
      for (const p of run) ctx.lineTo(x(p.t), yBytes(p.saved));
      ctx.lineTo(x(run[run.length - 1].t), plot.bottom);
      ctx.closePath();
      ctx.globalAlpha = 0.16;
      ctx.fillStyle = colors.saved;
      ctx.fill();
      ctx.globalAlpha = 1;
      strokeRun(ctx, run, x, (p) => yBytes(p.saved), colors.saved, 1.5, []);
    }
    // From upstream: dashed line; hit ratio: the strong line on top.
    for (const run of runs) strokeRun(ctx, run, x, (p) => yBytes(p.upstream), colors.upstream, 1.5, [4, 3]);
    for (const run of runs) strokeRun(ctx, run, x, (p) => yRatio(p.ratio), colors.ratio, 2.25, []);
    ctx.restore();

    // The newest sample, marked.
    const lastPoint = visible[visible.length - 1];
    dot(ctx, x(lastPoint.t), yRatio(lastPoint.ratio), colors.ratio, colors.card);
    if (visible.length < 2) {
      ctx.fillStyle = colors.text;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `13px ${font}`;
      ctx.fillText("Collecting samples…", plot.left + plotW / 2, plot.top + plotH / 2);
    }

    drawHover({ ctx, visible, x, yRatio, yBytes, plot, colors, start });
  }

  function strokeRun(ctx, run, x, y, color, width, dash) {
    if (run.length === 1) {
      dot(ctx, x(run[0].t), y(run[0]), color, null);
      return;
    }
    ctx.beginPath();
    ctx.setLineDash(dash);
    ctx.lineJoin = "round";
    ctx.lineWidth = width;
    ctx.strokeStyle = color;
    run.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p)) : ctx.lineTo(x(p.t), y(p))));
    ctx.stroke();
    ctx.setLineDash([]);
  }

  function dot(ctx, px, py, color, ring) {
    ctx.beginPath();
    ctx.arc(px, py, 3.5, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
    if (ring) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = ring;
      ctx.stroke();
    }
  }

  function drawHover(chart) {
    const tip = byTestId("chart-tip");
    if (chart === null || state.hover === null) {
      tip.hidden = true;
      return;
    }
    const { ctx, visible, x, yRatio, yBytes, plot, colors, start } = chart;
    const inWindow = visible.filter((p) => p.t >= start);
    if (inWindow.length === 0 || state.hover < plot.left || state.hover > plot.right) {
      tip.hidden = true;
      return;
    }
    let nearest = inWindow[0];
    for (const p of inWindow) {
      if (Math.abs(x(p.t) - state.hover) < Math.abs(x(nearest.t) - state.hover)) nearest = p;
    }
    const px = x(nearest.t);
    ctx.strokeStyle = colors.text;
    ctx.globalAlpha = 0.5;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, plot.top);
    ctx.lineTo(Math.round(px) + 0.5, plot.bottom);
    ctx.stroke();
    ctx.globalAlpha = 1;
    dot(ctx, px, yBytes(nearest.saved), colors.saved, colors.card);
    dot(ctx, px, yBytes(nearest.upstream), colors.upstream, colors.card);
    dot(ctx, px, yRatio(nearest.ratio), colors.ratio, colors.card);

    const row = (label, value) => h("div", { className: "tip-row" },
      h("span", { text: label }), h("b", { text: value }));
    tip.replaceChildren(
      h("div", { className: "tip-time", text: formatClock(nearest.t, true) }),
      row("hit ratio", formatPercent(nearest.ratio)),
      row("bytes saved", formatBytes(nearest.saved)),
      row("from upstream", formatBytes(nearest.upstream)),
    );
    tip.hidden = false;
    const boxWidth = tip.parentElement.clientWidth;
    const left = px + 14 + tip.offsetWidth > boxWidth ? px - 14 - tip.offsetWidth : px + 14;
    tip.style.left = `${Math.max(0, left)}px`;
  }

  // ---- wiring --------------------------------------------------------------------------------

  function setWindow(seconds) {
    state.windowSeconds = seconds;
    for (const button of document.querySelectorAll("[data-window]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.window) === seconds));
    }
    try {
      localStorage.setItem(WINDOW_KEY, String(seconds));
    } catch (err) {
      // Storage may be disabled; the choice then lasts for this page only.
    }
    drawChart();
  }

  function start() {
    let saved = null;
    try {
      saved = Number(localStorage.getItem(WINDOW_KEY));
    } catch (err) {
      saved = null;
    }
    for (const button of document.querySelectorAll("[data-window]")) {
      button.addEventListener("click", () => setWindow(Number(button.dataset.window)));
    }
    if ([300, 900, 3600].includes(saved)) setWindow(saved);

    $('[data-action="retry"]').addEventListener("click", () => {
      clearTimeout(state.timer);
      poll();
    });

    const canvas = byTestId("chart");
    canvas.addEventListener("mousemove", (event) => {
      state.hover = event.clientX - canvas.getBoundingClientRect().left;
      drawChart();
    });
    canvas.addEventListener("mouseleave", () => {
      state.hover = null;
      drawChart();
    });
    new ResizeObserver(() => drawChart()).observe(canvas.parentElement);
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => drawChart());

    // The page's own API, for tests and the browser console.
    window.regcacheDashboard = {
      formatBytes, formatPercent, formatCount, formatDuration, formatSeconds, poll,
      get stats() { return state.stats; },
      get series() { return series(); },
    };
    drawChart();
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
