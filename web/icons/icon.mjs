/**
 * The app icon, drawn from one description: as SVG (favicon, sign-in logo) and as PNG at any size (the
 * manifest's 192 and 512 px icons, the maskable one, the Apple touch icon). The PNG encoder is the
 * smallest that browsers accept: 8-bit RGBA, no filtering, compressed with node:zlib.
 */
import { deflateSync } from 'node:zlib';

/** All in units of the icon's side (0–1). */
const GRADIENT = ['#6a7dff', '#3343d1'];
const CORNER = 0.22;
const BUBBLE = { x: 0.2, y: 0.25, w: 0.6, h: 0.41, r: 0.12 };
const TAIL = [
  [0.3, 0.6],
  [0.47, 0.64],
  [0.26, 0.8],
];
const DOTS = { y: 0.455, xs: [0.37, 0.5, 0.63], r: 0.045, color: '#4152e3' };

/** The icon as SVG. `square`: full-bleed background (maskable icons, where the platform rounds it). */
export function iconSvg({ square = false } = {}) {
  const s = (v) => +(v * 512).toFixed(2);
  const dots = DOTS.xs
    .map((x) => `<circle cx="${s(x)}" cy="${s(DOTS.y)}" r="${s(DOTS.r)}" fill="${DOTS.color}"/>`)
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">` +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">` +
    `<stop offset="0" stop-color="${GRADIENT[0]}"/><stop offset="1" stop-color="${GRADIENT[1]}"/>` +
    `</linearGradient></defs>` +
    `<rect width="512" height="512" rx="${square ? 0 : s(CORNER)}" fill="url(#g)"/>` +
    `<rect x="${s(BUBBLE.x)}" y="${s(BUBBLE.y)}" width="${s(BUBBLE.w)}" height="${s(BUBBLE.h)}" ` +
    `rx="${s(BUBBLE.r)}" fill="#fff"/>` +
    `<path d="M${TAIL.map(([x, y]) => `${s(x)} ${s(y)}`).join('L')}Z" fill="#fff"/>` +
    `${dots}</svg>\n`
  );
}

/** The icon as a PNG of `size` × `size` pixels. */
export function iconPng(size, { square = false } = {}) {
  const from = rgb(GRADIENT[0]);
  const to = rgb(GRADIENT[1]);
  const dot = rgb(DOTS.color);
  const white = [255, 255, 255];
  const SAMPLES = 4; // per axis: 16 samples a pixel smooth the edges
  const rgba = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < SAMPLES; sy++) {
        for (let sx = 0; sx < SAMPLES; sx++) {
          const x = (px + (sx + 0.5) / SAMPLES) / size;
          const y = (py + (sy + 0.5) / SAMPLES) / size;
          if (!square && !inRoundedRect(x, y, 0, 0, 1, 1, CORNER)) continue;
          let color;
          if (DOTS.xs.some((cx) => (x - cx) ** 2 + (y - DOTS.y) ** 2 <= DOTS.r ** 2)) color = dot;
          else if (
            inRoundedRect(x, y, BUBBLE.x, BUBBLE.y, BUBBLE.w, BUBBLE.h, BUBBLE.r) ||
            inTriangle(x, y, TAIL)
          )
            color = white;
          else color = mix(from, to, (x + y) / 2);
          acc[0] += color[0];
          acc[1] += color[1];
          acc[2] += color[2];
          acc[3] += 255;
        }
      }
      const n = SAMPLES * SAMPLES;
      const covered = acc[3] / 255;
      const at = (py * size + px) * 4;
      // Colours are averaged over the covered samples only (straight alpha, as PNG wants).
      for (let c = 0; c < 3; c++) rgba[at + c] = covered ? Math.round(acc[c] / covered) : 0;
      rgba[at + 3] = Math.round(acc[3] / n);
    }
  }
  return encodePng(size, size, rgba);
}

function rgb(hex) {
  return [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
}

function mix(a, b, t) {
  return a.map((v, i) => v + (b[i] - v) * t);
}

function inRoundedRect(x, y, left, top, w, h, r) {
  if (x < left || y < top || x > left + w || y > top + h) return false;
  const cx = Math.min(Math.max(x, left + r), left + w - r);
  const cy = Math.min(Math.max(y, top + r), top + h - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function inTriangle(x, y, [[ax, ay], [bx, by], [cx, cy]]) {
  const side = (x1, y1, x2, y2) => (x - x2) * (y1 - y2) - (x1 - x2) * (y - y2);
  const d1 = side(ax, ay, bx, by);
  const d2 = side(bx, by, cx, cy);
  const d3 = side(cx, cy, ax, ay);
  return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}

function encodePng(width, height, rgba) {
  const raw = Buffer.alloc(height * (width * 4 + 1));
  for (let y = 0; y < height; y++) {
    // Each row starts with its filter type: 0, none.
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA, deflate, no filter method, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
