// The chart of bench/RESULTS.md: one panel per group of figures, horizontal
// bars on a log scale (the figures span nanoseconds to tens of milliseconds),
// our locks in one colour and the comparisons in another. Hand-written SVG.

import { type Figure, format } from "./_report.ts";

const WIDTH = 1170;
const LABEL = 560;
const BAR = 16;
const GAP = 6;
const OURS = "#2f6fdf";
const OTHER = "#9a9a9a";

const escape = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll(
    '"',
    "&quot;",
  );

/** Renders `figures` grouped by section, in their order of appearance. */
export function renderSvg(
  figures: readonly Figure[],
  machine: string,
): string {
  const sections = new Map<string, Figure[]>();
  for (const f of figures) {
    const list = sections.get(f.section) ?? [];
    list.push(f);
    sections.set(f.section, list);
  }
  const out: string[] = [];
  let y = 80;
  for (const [section, list] of sections) {
    const unit = list[0].unit;
    const rate = unit === "ops/s";
    const values = list.map((f) => f.value).filter((v) => v > 0);
    const lo = Math.log10(Math.min(...values) / 2);
    const hi = Math.log10(Math.max(...values) * 1.5);
    const span = Math.max(hi - lo, 0.5);
    const plot = WIDTH - LABEL - 110;
    out.push(
      `<text x="10" y="${y}" font-weight="bold">${escape(section)}${
        rate ? " (operations/s, log scale; longer is better)" : " (log scale; shorter is better)"
      }</text>`,
    );
    y += 10;
    for (const f of list) {
      const w = Math.max(2, ((Math.log10(Math.max(f.value, 1e-9)) - lo) / span) * plot);
      out.push(
        `<text x="${LABEL - 8}" y="${y + BAR - 4}" text-anchor="end">${escape(f.name)}</text>`,
        `<rect x="${LABEL}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${
          f.ours ? OURS : OTHER
        }"><title>${escape(`${f.name}: ${format(f.value, f.unit)} — ${f.command}`)}</title></rect>`,
        `<text x="${(LABEL + w + 6).toFixed(1)}" y="${y + BAR - 4}">${
          escape(format(f.value, f.unit))
        }</text>`,
      );
      y += BAR + GAP;
    }
    y += 26;
  }
  const height = y + 20;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">fasteners for Deno: deno task bench</text>`,
    `<text x="10" y="36" fill="#555">${escape(machine)}</text>`,
    `<text x="10" y="52"><tspan fill="${OURS}">■ this library</tspan>  ` +
    `<tspan fill="${OTHER}">■ comparisons</tspan>  (hover a bar for the command)</text>`,
    ...out,
    `</svg>`,
    "",
  ].join("\n");
}
