import type { ModelReport, Money, SliceMetrics } from './report.js';

/** report.html: one self-contained page (inline CSS and SVG, no script, no network). */

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(2)}%`);
const num3 = (x: number | null) => (x === null ? '–' : x.toFixed(4));
const money = (m: Money) =>
  Object.keys(m).length === 0
    ? '–'
    : Object.entries(m)
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([c, v]) => `${(v / 100).toLocaleString('en-US', { maximumFractionDigits: 0 })} ${esc(c)}`)
        .join('<br>');

const COLORS = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700'];

function table(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function sliceRow(name: string, m: SliceMetrics): string[] {
  return [
    esc(name),
    String(m.events),
    String(m.fraud),
    String(m.flagged),
    pct(m.flag_rate),
    pct(m.precision),
    pct(m.recall),
    num3(m.roc_auc),
    num3(m.pr_auc),
    money(m.money_caught),
    money(m.money_flagged),
    money(m.money_fraud),
  ];
}
const SLICE_HEAD = [
  '',
  'events',
  'labelled fraud',
  'flagged',
  'flag rate',
  'precision',
  'recall',
  'ROC-AUC',
  'PR-AUC',
  'money caught',
  'money flagged',
  'fraud money',
];

const W = 460;
const H = 260;
const PAD = 40;

function axes(xLabel: string, yLabel: string): string {
  return `<line x1="${PAD}" y1="${H - PAD}" x2="${W - 10}" y2="${H - PAD}" stroke="#666"/>
<line x1="${PAD}" y1="10" x2="${PAD}" y2="${H - PAD}" stroke="#666"/>
<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>
<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
}
const sx = (x: number) => PAD + x * (W - PAD - 10);
const sy = (y: number) => H - PAD - y * (H - PAD - 10);

function prChart(reports: ModelReport[]): string {
  const lines = reports
    .map((r, k) => {
      const pts = r.pr_curve.map((p) => `${sx(p.recall).toFixed(1)},${sy(p.precision).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="2" points="${pts}"/>
<text x="${W - 160}" y="${24 + 16 * k}" fill="${COLORS[k % COLORS.length]}">${esc(r.model_version)}</text>`;
    })
    .join('\n');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="precision-recall curve">${axes('recall', 'precision')}${lines}</svg>`;
}

function histogramChart(r: ModelReport): string {
  const { fraud, legit } = r.histogram;
  const tf = fraud.reduce((a, b) => a + b, 0) || 1;
  const tl = legit.reduce((a, b) => a + b, 0) || 1;
  const bins = fraud.length;
  const maxShare = Math.max(...fraud.map((v) => v / tf), ...legit.map((v) => v / tl), 1e-9);
  const bw = (W - PAD - 10) / bins;
  let bars = '';
  for (let b = 0; b < bins; b++) {
    const hl = (legit[b]! / tl / maxShare) * (H - PAD - 10);
    const hf = (fraud[b]! / tf / maxShare) * (H - PAD - 10);
    const x = PAD + b * bw;
    bars += `<rect x="${(x + 1).toFixed(1)}" y="${(H - PAD - hl).toFixed(1)}" width="${(bw / 2 - 1).toFixed(1)}" height="${hl.toFixed(1)}" fill="#8c959f"><title>legit ${legit[b]}</title></rect>`;
    bars += `<rect x="${(x + bw / 2).toFixed(1)}" y="${(H - PAD - hf).toFixed(1)}" width="${(bw / 2 - 1).toFixed(1)}" height="${hf.toFixed(1)}" fill="#d1242f"><title>fraud ${fraud[b]}</title></rect>`;
  }
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="score histogram">${axes('score (0 → 1)', 'share of class')}${bars}
<text x="${W - 150}" y="24" fill="#8c959f">legit</text><text x="${W - 100}" y="24" fill="#d1242f">labelled fraud</text></svg>`;
}

function dayChart(reports: ModelReport[]): string {
  const maxRate = Math.max(1e-9, ...reports.flatMap((r) => r.by_day.map((d) => d.flag_rate)));
  const lines = reports
    .map((r, k) => {
      const n = Math.max(1, r.by_day.length - 1);
      const pts = r.by_day
        .map((d, i) => `${sx(i / n).toFixed(1)},${sy(d.flag_rate / maxRate).toFixed(1)}`)
        .join(' ');
      return `<polyline fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="2" points="${pts}"/>`;
    })
    .join('\n');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="flag rate per day">${axes('day', `flag rate (max ${pct(maxRate)})`)}${lines}</svg>`;
}

export interface ReportPageMeta {
  source: string;
  events: number;
  feature_spec: string;
  generated_from: string;
}

export function renderReportHtml(reports: ModelReport[], meta: ReportPageMeta): string {
  const champion = reports[0]!;
  const sections = reports.map((r, k) => {
    const role = k === 0 ? 'champion' : 'challenger';
    const types = Object.entries(r.by_event_type).map(([t, m]) => sliceRow(t, m));
    const scen = r.by_scenario.map((s) => [
      esc(s.scenario),
      String(s.events),
      String(s.labelled),
      String(s.flagged),
      pct(s.detection_rate),
      num3(s.mean_score),
      money(s.money_caught),
      money(s.money),
    ]);
    const sweep = r.sweep.map((s) => [
      (s.threshold === r.threshold ? '<b>' : '') +
        String(Number(s.threshold.toPrecision(4))) +
        (s.threshold === r.threshold ? ' (policy)</b>' : ''),
      String(s.flagged),
      pct(s.flag_rate),
      pct(s.precision),
      pct(s.recall),
      money(s.money_caught),
      money(s.money_flagged),
    ]);
    return `<section><h2>${role}: ${esc(r.model_version)} · policy ${esc(r.policy_version)} · threshold ${Number(r.threshold.toPrecision(4))}</h2>
<h3>At the policy threshold</h3>${table(SLICE_HEAD, [sliceRow('all events', r.overall), ...types])}
<h3>Per fraud scenario (ground truth, labelled or not)</h3>${table(
      [
        'scenario',
        'events',
        'labelled',
        'flagged',
        'detected',
        'mean score',
        'money caught',
        'scenario money',
      ],
      scen,
    )}
<h3>Threshold sweep</h3>${table(['threshold', 'flagged', 'flag rate', 'precision', 'recall', 'money caught', 'money flagged'], sweep)}
<h3>Score histogram</h3>${histogramChart(r)}
</section>`;
  });
  const days = champion.by_day.map((d, i) => [
    d.day,
    String(d.events),
    String(d.fraud),
    ...reports.map((r) => `${r.by_day[i]!.flagged} (${pct(r.by_day[i]!.flag_rate)})`),
  ]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fraudstream backtest</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f6f8fa}svg{background:#fff;border:1px solid #d0d7de;margin:4px}
svg text{font:11px system-ui,sans-serif}.charts{display:flex;flex-wrap:wrap}
</style></head><body>
<h1>fraudstream backtest</h1>
<p>Source: <code>${esc(meta.source)}</code> · ${meta.events} events · feature spec <code>${esc(meta.feature_spec)}</code> · ${esc(meta.generated_from)}.
Labels: the last label of each event known at the end of the history. Money in major units per currency.</p>
<div class="charts"><figure>${prChart(reports)}<figcaption>Precision-recall curve</figcaption></figure>
<figure>${dayChart(reports)}<figcaption>Flag rate per day</figcaption></figure></div>
${sections.join('\n')}
<h2>Per day</h2>${table(['day', 'events', 'labelled fraud', ...reports.map((r) => `flagged: ${esc(r.model_version)}`)], days)}
</body></html>
`;
}
