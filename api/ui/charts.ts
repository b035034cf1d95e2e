/**
 * Apache ECharts, only the parts the page draws (bars, lines, heat map, graph) — about 230 kB gzipped in the
 * bundle, against 330 kB for the whole library — on the canvas renderer, which needs no inline style attributes
 * (the page's CSP forbids them). Each chart states what it shows in its aria-label, and every view puts the same
 * figures in a table beside it: a screen reader, a test and a person copying numbers read the table.
 */
import * as echarts from 'echarts/core';
import { BarChart, GraphChart, HeatmapChart, LineChart } from 'echarts/charts';
import {
  AriaComponent,
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  MarkPointComponent,
  TooltipComponent,
  VisualMapComponent,
} from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([
  BarChart,
  LineChart,
  HeatmapChart,
  GraphChart,
  AriaComponent,
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  MarkPointComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

export type ChartOption = echarts.EChartsCoreOption;
export type Chart = echarts.ECharts;

/** Colours with at least 4.5:1 against white (WCAG AA), in the order series take them. */
export const PALETTE = ['#1f5fa8', '#b3261e', '#1b7a3d', '#8a4b00', '#6b3fa0', '#00697a', '#5c5c5c'];

/**
 * Draws `option` into `container` (labelled `label` for assistive technology), resizes with it, and disposes when
 * the view's signal aborts. Returns the chart for views that update it live.
 */
export function drawChart(container: HTMLElement, label: string, option: ChartOption, signal: AbortSignal): Chart {
  container.classList.add('chart');
  container.setAttribute('role', 'img');
  container.setAttribute('aria-label', label);
  const chart = echarts.init(container, undefined, { renderer: 'canvas' });
  chart.setOption({ color: PALETTE, aria: { enabled: true }, animation: false, ...option });
  const observer = new ResizeObserver(() => chart.resize());
  observer.observe(container);
  signal.addEventListener(
    'abort',
    () => {
      observer.disconnect();
      chart.dispose();
    },
    { once: true },
  );
  return chart;
}
