// kueatomic dashboard: small inline-SVG charts (no library). drawChart(svg, spec) replaces the
// svg's content with an axis, gridlines and one mark group per series:
//   spec = { times: [ms...], series: [{ key, kind: "bar" | "line", values: [n | null...] }],
//            format: (n) => "label", stacked: true }   (bars of a stacked chart pile up)
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const HEIGHT = 190;
  const PAD = { left: 58, right: 10, top: 10, bottom: 24 };

  function node(tag, attrs, text) {
    const element = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, String(value));
    if (text !== undefined) element.textContent = String(text);
    return element;
  }

  // A round top for the axis: 1, 2 or 5 times a power of ten.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function clock(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function drawChart(svg, spec) {
    const width = Math.max(260, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
    svg.setAttribute("height", HEIGHT);
    const n = spec.times.length;
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const bars = spec.series.filter((s) => s.kind === "bar");
    const lines = spec.series.filter((s) => s.kind === "line");
    let top = 0;
    for (let i = 0; i < n; i++) {
      const barSum = bars.reduce((sum, s) => sum + (s.values[i] || 0), 0);
      top = Math.max(top, spec.stacked ? barSum : Math.max(0, ...bars.map((s) => s.values[i] || 0)));
      for (const s of lines) if (s.values[i] !== null && s.values[i] !== undefined) top = Math.max(top, s.values[i]);
    }
    const max = niceMax(top);
    const y = (v) => PAD.top + plotH - (v / max) * plotH;
    const slot = plotW / Math.max(1, n);
    const x = (i) => PAD.left + slot * i;
    const parts = [];

    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction;
      parts.push(node("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(value), y2: y(value) }));
      parts.push(node("text", { class: "tick", x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, spec.format(value)));
    }
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 70))));
    for (let i = 0; i < n; i += every) {
      parts.push(node("text", { class: "tick", x: x(i) + slot / 2, y: HEIGHT - 6, "text-anchor": "middle" }, clock(spec.times[i])));
    }

    const base = new Array(n).fill(0);
    for (const s of bars) {
      const group = node("g", { class: "series bar-" + s.key, "data-series": s.key });
      s.values.forEach((value, i) => {
        if (!value) return;
        const from = spec.stacked ? base[i] : 0;
        const rect = node("rect", { x: x(i) + slot * 0.12, width: Math.max(1, slot * 0.76),
          y: y(from + value), height: Math.max(1, y(from) - y(from + value)), "data-value": value });
        rect.appendChild(node("title", {}, clock(spec.times[i]) + ": " + spec.format(value) + " " + s.key));
        group.appendChild(rect);
        if (spec.stacked) base[i] += value;
      });
      parts.push(group);
    }
    for (const s of lines) {
      const group = node("g", { class: "series line-" + s.key, "data-series": s.key });
      let path = "";
      s.values.forEach((value, i) => {
        if (value === null || value === undefined) return;
        const px = x(i) + slot / 2;
        path += (path ? " L" : "M") + px.toFixed(1) + " " + y(value).toFixed(1);
        const dot = node("circle", { cx: px, cy: y(value), r: 2.5, "data-value": value });
        dot.appendChild(node("title", {}, clock(spec.times[i]) + ": " + spec.format(value) + " " + s.key));
        group.appendChild(dot);
      });
      if (path) group.insertBefore(node("path", { d: path }), group.firstChild);
      parts.push(group);
    }
    parts.push(node("line", { class: "axis", x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0) }));
    svg.replaceChildren(...parts);
  }

  window.Kue.drawChart = drawChart;
})();
