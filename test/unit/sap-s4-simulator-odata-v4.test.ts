import { z } from 'zod';
import { QUALITY_NOTIFICATION_SERVICE, SAP_SERVICES } from '../../infra/vendor-apis/sap-s4/metadata';
import {
  checkIfMatch,
  etagOf,
  parseV4Body,
  parseV4Query,
  SapODataV4Error,
  type V4EntitySetHandler,
} from '../../infra/simulators/sap-s4/odata-v4';

const ROOT = SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.entitySets.QualityNotification!;
const handler: V4EntitySetHandler = { served: ['QualityNotification', 'Material', 'Batch', 'NotificationType'] };

/** The V4 error `fn` throws; fails the test when it throws nothing or something else. */
function refusal(fn: () => unknown): SapODataV4Error {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SapODataV4Error);
    return err as SapODataV4Error;
  }
  throw new Error('expected the call to be refused');
}

describe('ETags', () => {
  it('are weak, derived from the change timestamp, and differ for changes a millisecond apart', () => {
    const at = new Date('2026-12-06T10:15:00.123Z');
    expect(etagOf(at)).toBe('W/"20261206101500.1230000"');
    expect(etagOf(new Date(at.getTime() + 1))).not.toBe(etagOf(at));
  });

  it('refuse a change without If-Match (428) or with a stale one (412); * and the current one (weak or not) pass', () => {
    const current = 'W/"20261206101500.1230000"';
    expect(refusal(() => checkIfMatch(undefined, current, "QualityNotification('1')")).httpStatus).toBe(428);
    expect(refusal(() => checkIfMatch(' ', current, 'x')).httpStatus).toBe(428);
    expect(refusal(() => checkIfMatch('W/"20261206101500.1220000"', current, 'x')).httpStatus).toBe(412);
    for (const ifMatch of ['*', current, '"20261206101500.1230000"', `W/"old", ${current}`]) {
      expect(() => checkIfMatch(ifMatch, current, 'x')).not.toThrow();
    }
  });
});

describe('V4 query options, checked against metadata.ts', () => {
  const parse = (query: Record<string, unknown>, reading = true) =>
    parseV4Query(query, 'QualityNotification', ROOT, handler, reading);

  it('takes $filter, $select, $expand, $orderby, $top and $skip on properties the simulator serves', () => {
    expect(
      parse({
        $filter: "Material eq 'M' and Batch eq 'B'",
        $select: 'NotificationType',
        $expand: '_QualityNotificationItem',
        $orderby: 'QualityNotification desc, Batch',
        $top: '5',
        'sap-client': '100',
      }),
    ).toMatchObject({
      filter: [
        { property: 'Material', value: 'M' },
        { property: 'Batch', value: 'B' },
      ],
      select: ['NotificationType'],
      expand: ['_QualityNotificationItem'],
      orderBy: [
        { property: 'QualityNotification', descending: true },
        { property: 'Batch', descending: false },
      ],
      top: 5,
    });
  });

  it.each([
    [{ $filter: "Colour eq 'red'" }, 'Colour', 'is not defined'],
    [{ $select: 'Colour' }, 'Colour', 'is not defined'],
    [{ $orderby: 'Colour' }, 'Colour', 'is not defined'],
    [{ $expand: 'to_QualityNotificationItem' }, 'to_QualityNotificationItem', 'is not defined'],
    [{ $expand: '_QualityNotificationItem($select=DefectCode)' }, '_QualityNotificationItem($select=DefectCode)', ''],
    [{ $filter: "Plant eq '1010'" }, 'Plant', 'not supported by the simulator'],
    [{ $count: 'true' }, '$count', 'not supported'],
    [{ $search: 'x' }, '$search', 'not supported'],
  ])('refuses %j naming %s', (query, named, why) => {
    const err = refusal(() => parse(query));
    expect(err).toMatchObject({ httpStatus: 400, target: named });
    expect(err.message).toContain(why);
  });

  it('takes no query options on a write but SAP parameters', () => {
    expect(parse({ 'sap-client': '100' }, false).filter).toEqual([]);
    expect(refusal(() => parse({ $expand: '_QualityNotificationItem' }, false)).target).toBe('$expand');
  });
});

describe('V4 bodies', () => {
  const Schema = z.strictObject({ NotificationText: z.string().max(40).optional() });
  const readOnly = new Set(['NotifProcessingPhase']);

  it('names a read-only property, one the simulator does not take, and an invalid value', () => {
    expect(refusal(() => parseV4Body(Schema, { NotifProcessingPhase: '4' }, readOnly)).message).toBe(
      "Property 'NotifProcessingPhase' is read-only",
    );
    expect(refusal(() => parseV4Body(Schema, { NotificationPriority: '1' }, readOnly)).message).toBe(
      "Property 'NotificationPriority' is not supported by the simulator",
    );
    const tooLong = refusal(() => parseV4Body(Schema, { NotificationText: 'x'.repeat(41) }, readOnly));
    expect(tooLong).toMatchObject({ httpStatus: 400, target: 'NotificationText' });
    expect(parseV4Body(Schema, { NotificationText: 'ok' }, readOnly)).toEqual({ NotificationText: 'ok' });
  });
});
