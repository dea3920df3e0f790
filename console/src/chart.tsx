/**
 * A time-series chart (uPlot: canvas, ~50 KB, no DOM per point). Labels reach the DOM only
 * through uPlot's legend, which sets them as text.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
}

export interface ChartProps {
  /** Unix seconds of each point. */
  x: number[];
  series: ChartSeries[];
  /** Formats the y values on the axis and in the legend. */
  format: (v: number) => string;
  height?: number;
  /** Accessible name of the canvas. */
  title: string;
  /** Counts: ticks on whole numbers only. */
  integer?: boolean;
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

/** Whole-number tick steps for counts. */
const INTEGER_STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9,
];

/** Times on the axis and in the legend in UTC, like the tables and the API. */
const utc = (ts: number) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC');

export function Chart({ x, series, format, height = 260, title, integer = false }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return undefined;
    const width = Math.max(320, el.clientWidth || 800);
    const plot = new uPlot(
      {
        width,
        height,
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length] ?? '#333',
            width: 2,
            points: { show: x.length < 60 },
            value: (_u: uPlot, v: number | null) => (v === null ? '–' : format(v)),
          })),
        ],
        tzDate: utc,
        axes: [
          {},
          {
            values: (_u: uPlot, vals: number[]) => vals.map((v) => format(v)),
            size: 70,
            ...(integer ? { incrs: INTEGER_STEPS } : {}),
          },
        ],
        scales: {
          y: { range: (_u: uPlot, min: number, max: number) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
        },
        legend: { live: true },
      },
      [x, ...series.map((s) => s.values)],
      el,
    );
    plot.root.setAttribute('role', 'img');
    plot.root.setAttribute('aria-label', title);
    const onResize = () => plot.setSize({ width: Math.max(320, el.clientWidth || 800), height });
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      plot.destroy();
    };
  }, [x, series, format, height, title, integer]);
  return <div class="chart" ref={host} />;
}
