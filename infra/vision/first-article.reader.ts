/**
 * A changeover's first article (docs/changeover.md#holdfast-stations): the first parts of the new order inspected on
 * the line's Holdfast stations, read from holdfast.inspection, each with its combined result.
 */
import type pg from 'pg';
import type { FirstArticleReader } from '../../activities/ports';
import type { HoldfastConfig } from '../config/schema';

interface PartRow {
  part_id: string;
  failed: boolean;
  event_ids: string[];
  lot_id: string;
  first_at: Date;
}

/**
 * The stations whose verdict a first article needs: the line's Holdfast inference stations in production. A station in
 * shadow mode is still being validated and an external vision system's results do not reach holdfast.inspection.
 */
export function firstArticleStations(config: HoldfastConfig, line: { site: string; line: string }): string[] {
  const stations = config.sites.find((s) => s.id === line.site)?.lines.find((l) => l.id === line.line)?.stations ?? [];
  return stations.filter((st) => st.vision === undefined && st.mode === 'production').map((st) => st.id);
}

/**
 * The first `parts` parts of the order on the line, in the order they were first inspected; of those, only the ones
 * decided: failed at any station (a fail is final), or inspected by every station `firstArticleStations` names. The
 * changeover polls until it gets `parts` of them, so a part still on its way to the last station is waited for, not
 * passed on one station's word.
 */
export function createFirstArticleReader(pool: Pick<pg.Pool, 'query'>, config: HoldfastConfig): FirstArticleReader {
  return {
    async firstParts(line, workOrder, parts, since) {
      const stations = firstArticleStations(config, line);
      const { rows } = await pool.query<PartRow>(
        `WITH parts AS (
           SELECT part_id,
                  min(inspected_at) AS first_at,
                  bool_or(result = 'fail') AS failed,
                  array_agg(event_id ORDER BY inspected_at, event_id) AS event_ids,
                  (array_agg(lot_id ORDER BY inspected_at, event_id))[1] AS lot_id,
                  count(DISTINCT station) FILTER (WHERE station = ANY($4::text[])) AS stations_seen
             FROM holdfast.inspection
            WHERE site = $1 AND line = $2 AND work_order = $3 AND mode = 'production'
              AND ($6::timestamptz IS NULL OR received_at >= $6::timestamptz)
            GROUP BY part_id
            ORDER BY first_at, part_id
            LIMIT $5
         )
         SELECT part_id, failed, event_ids, lot_id, first_at FROM parts
          WHERE failed OR stations_seen >= cardinality($4::text[])
          ORDER BY first_at, part_id`,
        [line.site, line.line, workOrder, stations, parts, since ?? null],
      );
      return rows.map((r) => ({
        partId: r.part_id,
        result: r.failed ? 'fail' : 'pass',
        eventIds: r.event_ids,
        lotId: r.lot_id,
        inspectedAt: r.first_at.toISOString(),
      }));
    },
  };
}
