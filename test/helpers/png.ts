/** Reading what a real SVG renderer drew: a tiny PNG decoder and a pixel counter for tests. */
import { inflateSync } from 'node:zlib';
import { expect } from 'vitest';

export interface Png {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, row-major. */
  pixels: Buffer;
}

/** A tiny PNG decoder: 8-bit RGB or RGBA, non-interlaced (what rsvg-convert writes). */
export function decodePng(data: Buffer): Png {
  expect(data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < data.length) {
    const length = data.readUInt32BE(offset);
    const type = data.toString('ascii', offset + 4, offset + 8);
    const body = data.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const bitDepth = body[8];
      const colorType = body[9];
      const interlace = body[12];
      expect({ bitDepth, interlace }).toEqual({ bitDepth: 8, interlace: 0 });
      channels = colorType === 6 ? 4 : colorType === 2 ? 3 : 0;
      expect(channels, `unsupported PNG colour type ${colorType}`).toBeGreaterThan(0);
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(width * height * 4);
  let previous = Buffer.alloc(stride);
  for (let row = 0; row < height; row++) {
    const filter = raw[row * (stride + 1)];
    const line = Buffer.from(raw.subarray(row * (stride + 1) + 1, (row + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? line[i - channels]! : 0;
      const b = previous[i]!;
      const c = i >= channels ? previous[i - channels]! : 0;
      let add = 0;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i]! + add) & 0xff;
    }
    for (let px = 0; px < width; px++) {
      const src = px * channels;
      const dst = (row * width + px) * 4;
      pixels[dst] = line[src]!;
      pixels[dst + 1] = line[src + 1]!;
      pixels[dst + 2] = line[src + 2]!;
      pixels[dst + 3] = channels === 4 ? line[src + 3]! : 255;
    }
    previous = line;
  }
  return { width, height, pixels };
}

const hex = (color: string) => [1, 3, 5].map((i) => Number.parseInt(color.slice(i, i + 2), 16));

/** Pixels in column x (±1) between y0 and y1 close to `color`. */
export function countColor(png: Png, x: number, y0: number, y1: number, color: string): number {
  const [r, g, b] = hex(color);
  let count = 0;
  for (let y = Math.max(0, y0); y < Math.min(png.height, y1); y++) {
    for (let dx = -1; dx <= 1; dx++) {
      const i = (y * png.width + Math.round(x) + dx) * 4;
      if (Math.abs(png.pixels[i]! - r!) < 40 && Math.abs(png.pixels[i + 1]! - g!) < 40 && Math.abs(png.pixels[i + 2]! - b!) < 40) count++;
    }
  }
  return count;
}

