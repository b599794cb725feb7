/** The value of one sample of a Prometheus text exposition; 0 when it is not there yet. */
export function metricSample(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ").pop()) : 0;
}
