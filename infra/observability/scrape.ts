/**
 * One database read per scrape, shared by the gauges it feeds: prom-client collects every metric of a scrape at
 * once, so the gauges of one query would otherwise each run it. A failed read resolves to undefined: the gauges it
 * feeds are left out of that scrape (absent, not stale), and the rest of the scrape still answers.
 */
export function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T | undefined> {
  let inFlight: Promise<T | undefined> | undefined;
  return () =>
    (inFlight ??= read()
      .catch(() => undefined)
      .finally(() => {
        inFlight = undefined;
      }));
}
