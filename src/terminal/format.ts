/** A count for people to read: rounded, with thousands separators (12,345). */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}
