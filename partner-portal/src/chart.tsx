/**
 * A line chart (uPlot: small, fast, maintained; canvas drawing, no inline
 * styles, so it works under the strict Content-Security-Policy). The table
 * under every chart carries the same numbers for screen readers.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  values: (number | null)[];
  dash?: boolean;
}

const COLOURS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export function LineChart(props: { title: string; x: number[]; xLabel: string; yLabel: string; series: Series[]; testId?: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el || props.x.length === 0) return;
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 240,
      scales: { x: { time: false } },
      axes: [{ label: props.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { label: props.yLabel }],
      series: [{ label: props.xLabel }, ...props.series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, ...(s.dash ? { dash: [6, 4] } : {}), points: { show: true } }))],
      legend: { show: true },
    };
    const plot = new uPlot(opts, [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 240 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [JSON.stringify([props.x, props.series])]);
  return (
    <figure class="chart" data-testid={props.testId}>
      <figcaption>{props.title}</figcaption>
      {props.x.length === 0 ? <p class="muted">No data yet.</p> : <div ref={host} role="img" aria-label={`${props.title}: chart of ${props.series.map((s) => s.label).join(', ')} by ${props.xLabel}`} />}
    </figure>
  );
}
