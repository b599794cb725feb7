/**
 * The dashboard's two pages: static shells that carry no data (the scripts fetch it and build
 * the DOM with textContent), so nothing a run is named can become markup.
 */

function page(title: string, scripts: string[], styles: string[], body: string): string {
  const links = ["dashboard.css", ...styles].map((file) => `<link rel="stylesheet" href="/assets/${file}">`);
  const tags = scripts.map((file) => `<script src="/assets/${file}" defer></script>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${[...links, ...tags].join("\n")}
</head>
<body>
<header class="bar"><a href="/" class="brand">pg-batch</a><span id="live" class="live">connecting</span></header>
<main>
${body}
</main>
</body>
</html>
`;
}

export const RUNS_PAGE = page(
  "pg-batch: batch runs",
  ["runs-page.js"],
  [],
  `<h1>Batch runs</h1>
<section id="start-form" class="controls"></section>
<table id="runs" class="runs"></table>
<section id="schedules-section" hidden>
  <h2>Schedules</h2>
  <table id="schedules"></table>
</section>`,
);

export const RUN_PAGE = page(
  "pg-batch: batch run",
  ["uPlot.iife.min.js", "run-page.js"],
  ["uPlot.min.css"],
  `<h1 id="title">Batch run</h1>
<section class="summary">
  <progress id="progress" max="100" value="0"></progress>
  <dl id="figures" class="figures"></dl>
</section>
<section id="controls" class="controls"></section>
<section>
  <h2>Progress: rows done and rows per second</h2>
  <div id="chart" class="chart"></div>
</section>
<section class="columns">
  <div><h2>Chunks of this round</h2><table id="chunks"></table></div>
  <div><h2>Workers</h2><table id="workers"></table></div>
</section>
<section>
  <h2>Errors, by message</h2>
  <div id="errors-access"></div>
  <table id="errors"></table>
</section>
<section>
  <h2>History</h2>
  <table id="events"></table>
</section>`,
);
