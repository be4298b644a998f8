/**
 * A small grouped bar chart as hand-written SVG text (no chart library): one group per category (e.g.
 * a worker count), one bar per series (e.g. a durability mode), the value printed above each bar.
 */

export interface BarSeries {
  name: string;
  /** One value per category; null = no run. */
  values: (number | null)[];
}

export interface BarChart {
  title: string;
  subtitle?: string;
  /** Category labels under the groups, e.g. "1 worker". */
  categories: string[];
  series: BarSeries[];
  /** Y-axis label, e.g. "msg/s". */
  unit: string;
}

const COLORS = ['#3b6fb6', '#d9822b', '#4a9e5c', '#a34a9e'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round axis maximum ≥ `max` (1, 2, 2.5 or 5 × a power of ten, times 5 ticks). */
function niceStep(max: number): number {
  if (max <= 0) return 1;
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function shortNumber(n: number): string {
  if (n >= 1_000_000) return `${+(n / 1_000_000).toFixed(2)} M`;
  if (n >= 1000) return `${+(n / 1000).toFixed(1)} k`;
  return String(+n.toFixed(1));
}

export function barChartSvg(chart: BarChart): string {
  const width = 640;
  const height = 360;
  const left = 70;
  const right = 20;
  const top = chart.subtitle ? 64 : 48;
  const bottom = chart.series.length > 1 ? 70 : 44;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(0, ...chart.series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const step = niceStep(max);
  const axisMax = step * Math.max(1, Math.ceil(max / step));
  const y = (v: number): number => top + plotH - (v / axisMax) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
  );
  if (chart.subtitle) {
    out.push(`<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">${esc(chart.subtitle)}</text>`);
  }
  // Grid lines and y labels.
  for (let v = 0; v <= axisMax + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${left}" x2="${width - right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${esc(shortNumber(v))}</text>`,
    );
  }
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(chart.unit)}</text>`,
  );
  // Bars.
  const groupW = plotW / Math.max(1, chart.categories.length);
  const barW = Math.min(80, (groupW * 0.7) / Math.max(1, chart.series.length));
  chart.categories.forEach((category, ci) => {
    const groupX = left + ci * groupW;
    const barsX = groupX + (groupW - barW * chart.series.length) / 2;
    chart.series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined) return;
      const x = barsX + si * barW;
      const yy = y(v);
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(top + plotH - yy).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${category}, ${s.name}: ${Math.round(v).toLocaleString('en-US')} ${chart.unit}`)}</title></rect>`,
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(yy - 5).toFixed(1)}" text-anchor="middle">${esc(shortNumber(v))}</text>`,
      );
    });
    out.push(
      `<text x="${(groupX + groupW / 2).toFixed(1)}" y="${top + plotH + 20}" text-anchor="middle">${esc(category)}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#444"/>`,
  );
  // Legend.
  if (chart.series.length > 1) {
    const ly = height - 22;
    let lx = left;
    chart.series.forEach((s, si) => {
      out.push(
        `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`,
        `<text x="${lx + 18}" y="${ly}">${esc(s.name)}</text>`,
      );
      lx += 30 + s.name.length * 8;
    });
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ------------------------------------------------------------------ line charts (the HTML reports)

export interface LineSeries {
  name: string;
  /** [x, y] points in x order. */
  points: [number, number][];
  color?: string;
}

export interface LineChart {
  title: string;
  subtitle?: string;
  /** X-axis label, e.g. "seconds since the load started". */
  xLabel: string;
  /** Y-axis label, e.g. "msg/s". */
  unit: string;
  series: LineSeries[];
  /** Shaded x ranges (e.g. the warm-up). */
  bands?: { from: number; to: number; label: string }[];
  /** Vertical lines (e.g. the moment of a cut). */
  marks?: { at: number; label: string }[];
  /** Lowest x of the axis (default 0) and highest (default: the data's). */
  xMin?: number;
  xMax?: number;
  width?: number;
  height?: number;
}

/** `count` ticks from `min` to `max` on round values. */
function ticks(min: number, max: number, count = 6): number[] {
  const step = niceStep((max - min) * (5 / count));
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step / 1000; v += step) out.push(+v.toFixed(10));
  return out;
}

function svgOpen(width: number, height: number, title: string, subtitle?: string): string[] {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12" role="img">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  if (subtitle) {
    out.push(`<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  }
  return out;
}

/** A line chart as SVG text: x and y axes with round ticks, shaded bands, vertical marks, a legend. */
export function lineChartSvg(chart: LineChart): string {
  const width = chart.width ?? 1000;
  const height = chart.height ?? 360;
  const left = 72;
  const right = 44;
  const top = chart.subtitle ? 60 : 44;
  const bottom = chart.series.length > 1 ? 72 : 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = chart.series.flatMap((s) => s.points);
  const xMin = chart.xMin ?? 0;
  const xMax = Math.max(xMin + 1e-9, chart.xMax ?? Math.max(xMin + 1, ...all.map((p) => p[0])));
  const yMaxData = Math.max(0, ...all.map((p) => p[1]));
  const yStep = niceStep(yMaxData);
  const yMax = yStep * Math.max(1, Math.ceil(yMaxData / yStep));
  const x = (v: number): number => left + ((v - xMin) / (xMax - xMin)) * plotW;
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;

  const out = svgOpen(width, height, chart.title, chart.subtitle);
  for (const b of chart.bands ?? []) {
    const x1 = x(Math.max(xMin, b.from));
    const x2 = x(Math.min(xMax, b.to));
    if (x2 <= x1) continue;
    out.push(
      `<rect x="${x1.toFixed(1)}" y="${top}" width="${(x2 - x1).toFixed(1)}" height="${plotH}" fill="#eef0f4"/>`,
      `<text x="${((x1 + x2) / 2).toFixed(1)}" y="${top + 14}" text-anchor="middle" fill="#777">${esc(b.label)}</text>`,
    );
  }
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${left}" x2="${width - right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${esc(shortNumber(v))}</text>`,
    );
  }
  for (const v of ticks(xMin, xMax)) {
    const xx = x(v).toFixed(1);
    out.push(
      `<line x1="${xx}" x2="${xx}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#444"/>`,
      `<text x="${xx}" y="${top + plotH + 18}" text-anchor="middle" fill="#444">${esc(String(+v.toFixed(3)))}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#444"/>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#444"/>`,
    `<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle" fill="#444">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(chart.unit)}</text>`,
  );
  (chart.marks ?? []).forEach((m, i) => {
    if (m.at < xMin || m.at > xMax) return;
    const xx = x(m.at);
    // Labels inside the plot, beside their line (left of it near the right edge), staggered so close
    // marks stay readable.
    const nearEnd = xx > left + plotW * 0.85;
    out.push(
      `<line x1="${xx.toFixed(1)}" x2="${xx.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#c0392b" stroke-dasharray="5 4"/>`,
      `<text x="${(nearEnd ? xx - 4 : xx + 4).toFixed(1)}" y="${top + 14 + (i % 2) * 14}" text-anchor="${nearEnd ? 'end' : 'start'}" fill="#c0392b">${esc(m.label)}</text>`,
    );
  });
  chart.series.forEach((s, si) => {
    if (s.points.length === 0) return;
    const color = s.color ?? COLORS[si % COLORS.length];
    const d = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`,
    );
    if (s.points.length <= 60) {
      for (const [px, py] of s.points) {
        out.push(
          `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2.5" fill="${color}"><title>${esc(`${s.name}: ${+px.toFixed(3)} → ${Math.round(py * 100) / 100}`)}</title></circle>`,
        );
      }
    }
  });
  if (chart.series.length > 1) {
    const ly = height - 14;
    let lx = left;
    chart.series.forEach((s, si) => {
      out.push(
        `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color ?? COLORS[si % COLORS.length]}"/>`,
        `<text x="${lx + 18}" y="${ly}">${esc(s.name)}</text>`,
      );
      lx += 40 + s.name.length * 7;
    });
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface PercentileChart {
  title: string;
  subtitle?: string;
  /** [percentile (0–100), value] points in percentile order. */
  points: [number, number][];
  /** Y-axis label, e.g. "latency, ms". */
  unit: string;
  /** Percentiles to mark with a dot and their value (default 50, 90, 99, 99.9). */
  marked?: number[];
  width?: number;
  height?: number;
}

/** x position of a percentile: −log10(1 − p/100), so 90 % → 1, 99 % → 2, 99.999 % → 5. */
function nines(p: number): number {
  return -Math.log10(Math.max(1e-9, 1 - p / 100));
}

/**
 * An HdrHistogram percentile distribution as SVG text: x on the "nines" log scale from 0 % to
 * 99.999 %, y linear. Points at 100 % (the maximum) are drawn at 99.999 %.
 */
export function percentileChartSvg(chart: PercentileChart): string {
  const width = chart.width ?? 1000;
  const height = chart.height ?? 360;
  const left = 72;
  const right = 44;
  const top = chart.subtitle ? 60 : 44;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const X_MAX = 5;
  const pts = chart.points.map(([p, v]) => [Math.min(X_MAX, nines(p)), v] as [number, number]);
  const yMaxData = Math.max(0, ...pts.map((p) => p[1]));
  const yStep = niceStep(yMaxData);
  const yMax = yStep * Math.max(1, Math.ceil(yMaxData / yStep));
  const x = (v: number): number => left + (v / X_MAX) * plotW;
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;

  const out = svgOpen(width, height, chart.title, chart.subtitle);
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${left}" x2="${width - right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${esc(shortNumber(v))}</text>`,
    );
  }
  const labels = ['0 %', '90 %', '99 %', '99.9 %', '99.99 %', '99.999 %'];
  labels.forEach((label, i) => {
    const xx = x(i).toFixed(1);
    out.push(
      `<line x1="${xx}" x2="${xx}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`,
      `<line x1="${xx}" x2="${xx}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#444"/>`,
      `<text x="${xx}" y="${top + plotH + 18}" text-anchor="middle" fill="#444">${esc(label)}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#444"/>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#444"/>`,
    `<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle" fill="#444">percentile (log scale)</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(chart.unit)}</text>`,
  );
  if (pts.length > 0) {
    const d = pts.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${d}" fill="none" stroke="${COLORS[0]}" stroke-width="2" stroke-linejoin="round"/>`,
    );
    for (const p of chart.marked ?? [50, 90, 99, 99.9]) {
      // The value at the first point at or above p.
      const hit = chart.points.find(([q]) => q >= p - 1e-9);
      if (!hit) continue;
      const cx = x(Math.min(X_MAX, nines(p)));
      const cy = y(hit[1]);
      out.push(
        `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3.5" fill="${COLORS[1]}"/>`,
        `<text x="${(cx + 6).toFixed(1)}" y="${(cy - 6).toFixed(1)}" fill="#333">${esc(`p${p} ${+hit[1].toFixed(2)}`)}</text>`,
      );
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
