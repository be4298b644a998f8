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
