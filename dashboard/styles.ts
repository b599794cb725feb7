/** The dashboard's stylesheet, served as /assets/dashboard.css (no inline style: the CSP forbids it). */
export const DASHBOARD_CSS = `
:root { color-scheme: light; --ink: #1d2430; --muted: #5d6776; --line: #dde2e8; --accent: #2f6fde; --bad: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7f9; }
.bar { display: flex; justify-content: space-between; align-items: center; padding: 10px 24px; background: #1d2430; }
.bar a { color: #fff; text-decoration: none; font-weight: 600; }
.live { color: #b8c2cf; font-size: 12px; }
.live.lost { color: #ffb4a8; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 16px; overflow-wrap: anywhere; }
h2 { font-size: 15px; margin: 20px 0 8px; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin-bottom: 14px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
.text { overflow-wrap: anywhere; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.runs { background: #fff; border: 1px solid var(--line); }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #e8ebef; }
.status.running, .status.pending { background: #dce8fd; color: #1d4fa8; }
.status.paused, .status.cancelling { background: #fdf0d5; color: #8a5a00; }
.status.completed { background: #dcf3e3; color: #17673a; }
.status.failed, .status.cancelled { background: #fbe0dc; color: var(--bad); }
progress { width: 100%; height: 14px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px 16px; margin: 12px 0 0; }
.figures dt { color: var(--muted); font-size: 12px; }
.figures dd { margin: 0; font-size: 16px; font-variant-numeric: tabular-nums; }
.controls:empty { display: none; }
.controls label { margin-right: 12px; }
.controls button { margin-right: 8px; padding: 4px 14px; }
.message { margin-left: 8px; color: var(--muted); }
.message.error { color: var(--bad); }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
.chart { min-height: 260px; }
.empty { color: var(--muted); }
`;
