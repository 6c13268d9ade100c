// Live time-series charts drawn as plain SVG (no library: two small line charts do not
// justify a dependency, and this needs no build step or vendored file).
//
// The chart fills a container of fixed height (CSS), so streaming data never moves the
// page. Series differ by colour AND dash pattern, so they can be told apart without colour.

const SVG = "http://www.w3.org/2000/svg";
const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

/**
 * new TimeChart(container, {
 *   series: [{key, label, color, dash}],
 *   windowMs: 600000,          // how much history is shown
 *   bucketMs: 10000,           // "count" mode: events are counted per bucket
 *   mode: "count" | "value",   // count events, or plot values (latest per bucket)
 *   yMax: 100,                 // fixed top of the scale (else from the data)
 *   unit: "%",
 *   describe: (latest) => "text for screen readers",
 * })
 */
export class TimeChart {
  constructor(container, options) {
    this.container = container;
    this.options = { windowMs: 600000, bucketMs: 10000, mode: "value", unit: "", ...options };
    this.buckets = new Map(this.options.series.map((s) => [s.key, new Map()]));
    this.frame = null;
    container.setAttribute("role", "img");
    this.svg = svg("svg", { class: "chart-svg", "aria-hidden": "true", focusable: "false" });
    container.append(this.svg);
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(container);
    this.ticker = setInterval(() => this.schedule(), 2000);
    this.schedule();
  }

  bucketOf(time) {
    return Math.floor(time / this.options.bucketMs);
  }

  /** count mode: `n` events (one by default) of series `key` at `time` (ms). */
  count(key, time = Date.now(), n = 1) {
    const series = this.buckets.get(key);
    if (!series || !this.inWindow(time)) return;
    const bucket = this.bucketOf(time);
    series.set(bucket, (series.get(bucket) || 0) + n);
    this.schedule();
  }

  /** value mode: the value of series `key` at `time` (ms). */
  value(key, value, time = Date.now()) {
    const series = this.buckets.get(key);
    if (!series || !Number.isFinite(value) || !this.inWindow(time)) return;
    series.set(this.bucketOf(time), value);
    this.schedule();
  }

  inWindow(time) {
    const now = Date.now();
    return time > now - this.options.windowMs && time <= now + 60000;
  }

  schedule() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  points(key, first, last) {
    const series = this.buckets.get(key);
    for (const bucket of series.keys()) if (bucket < first) series.delete(bucket);
    const result = [];
    for (let bucket = first; bucket <= last; bucket++) {
      if (series.has(bucket)) result.push([bucket, series.get(bucket)]);
      else if (this.options.mode === "count") result.push([bucket, 0]);
    }
    return result;
  }

  render() {
    const { windowMs, bucketMs, series, unit } = this.options;
    const width = Math.max(200, Math.floor(this.container.clientWidth));
    const height = Math.max(100, Math.floor(this.container.clientHeight));
    const last = this.bucketOf(Date.now());
    const first = last - Math.round(windowMs / bucketMs) + 1;
    const data = series.map((s) => ({ ...s, points: this.points(s.key, first, last) }));
    let top = this.options.yMax;
    if (!top) {
      const highest = Math.max(0, ...data.flatMap((s) => s.points.map((p) => p[1])));
      top = Math.max(4, niceCeiling(highest));
    }
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (bucket) => PAD.left + ((bucket - first) / Math.max(1, last - first)) * plotW;
    const y = (v) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;

    const root = this.svg;
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const value = top * fraction;
      root.append(
        svg("line", {
          x1: PAD.left,
          x2: width - PAD.right,
          y1: y(value),
          y2: y(value),
          class: "chart-grid",
        }),
      );
      const text = svg("text", { x: PAD.left - 6, y: y(value) + 4, class: "chart-label", "text-anchor": "end" });
      text.textContent = `${Math.round(value)}${unit}`;
      root.append(text);
    }
    const minutes = Math.round(windowMs / 60000);
    for (const [fraction, caption] of [
      [0, `−${minutes} min`],
      [0.5, `−${Math.round(minutes / 2)} min`],
      [1, "now"],
    ]) {
      const text = svg("text", {
        x: PAD.left + fraction * plotW,
        y: height - 6,
        class: "chart-label",
        "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle",
      });
      text.textContent = caption;
      root.append(text);
    }
    for (const s of data) {
      if (!s.points.length) continue;
      const line = s.points.map(([bucket, v]) => `${x(bucket).toFixed(1)},${y(v).toFixed(1)}`);
      if (line.length === 1) line.push(line[0].replace(/^[^,]+/, (v) => String(Number(v) + 2)));
      root.append(
        svg("polyline", {
          points: line.join(" "),
          fill: "none",
          stroke: s.color,
          "stroke-width": 2,
          "stroke-dasharray": s.dash || "none",
          "stroke-linejoin": "round",
          class: "chart-line",
        }),
      );
    }
    const latest = Object.fromEntries(
      data.map((s) => [s.key, s.points.length ? s.points[s.points.length - 1][1] : null]),
    );
    const totals = Object.fromEntries(
      data.map((s) => [s.key, s.points.reduce((sum, p) => sum + p[1], 0)]),
    );
    const description = this.options.describe
      ? this.options.describe({ latest, totals })
      : "Live chart";
    this.container.setAttribute("aria-label", description);
  }
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}
