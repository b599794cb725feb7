/// <reference lib="dom" />
import type UPlot from "uplot";
import { formatCount } from "./common";

/**
 * The run's progress over time: rows done on the left axis, rows per second on the right. Drawn
 * by uPlot, which the page loads before this script (the dashboard serves it from node_modules).
 */

export interface ProgressPoint {
  at: string;
  done: number;
  rowsPerSecond: number | null;
}

const HEIGHT = 260;

export class ProgressChart {
  private readonly plot: UPlot;

  constructor(private readonly container: HTMLElement) {
    const Plot = (globalThis as unknown as { uPlot: typeof UPlot }).uPlot;
    const counts = (_: UPlot, values: number[]) => values.map(formatCount);
    const legend = (_: UPlot, value: number | null) => formatCount(value);
    this.plot = new Plot(
      {
        width: this.width(),
        height: HEIGHT,
        // the series' names only: values under the cursor would repeat the axes
        legend: { live: false },
        series: [
          {},
          { label: "rows done", scale: "rows", stroke: "#2f6fde", width: 2, value: legend },
          { label: "rows/s", scale: "rate", stroke: "#e08a1e", width: 1.5, value: legend },
        ],
        scales: {
          rows: { range: (_, __, max) => [0, Math.max(max, 1)] },
          rate: { range: (_, __, max) => [0, Math.max(max, 1)] },
        },
        axes: [
          {},
          { scale: "rows", values: counts, size: 70 },
          { scale: "rate", side: 1, values: counts, size: 70, grid: { show: false } },
        ],
      },
      [[], [], []],
      container,
    );
    window.addEventListener("resize", () => this.plot.setSize({ width: this.width(), height: HEIGHT }));
  }

  private width(): number {
    return Math.max(this.container.clientWidth, 300);
  }

  show(points: ProgressPoint[]): void {
    this.plot.setData([
      points.map((point) => new Date(point.at).getTime() / 1000),
      points.map((point) => point.done),
      points.map((point) => point.rowsPerSecond),
    ]);
  }
}
