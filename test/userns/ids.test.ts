import { describe, expect, it } from 'vitest';
import { parseIdMap, parseSubordinateIds, planIds, sameMappings } from '../../src/userns/ids.js';

const SUBUID = `# comment
alice:100000:65536
1001:300000:1000
bob:200000:65536
alice:500000:10
broken:line
carol:x:10
`;

describe('parseSubordinateIds', () => {
  it('finds every range of the user by name or uid, in file order, skipping malformed lines', () => {
    expect(parseSubordinateIds(SUBUID, { name: 'alice', id: 1000 })).toEqual([
      { start: 100000, count: 65536 },
      { start: 500000, count: 10 },
    ]);
    expect(parseSubordinateIds(SUBUID, { name: 'dave', id: 1001 })).toEqual([{ start: 300000, count: 1000 }]);
    expect(parseSubordinateIds(SUBUID, { name: 'carol', id: 7 })).toEqual([]);
    expect(parseSubordinateIds('', { id: 1 })).toEqual([]);
  });
});

describe('planIds', () => {
  const base = { euid: 1000, egid: 1000, user: 'alice', subuid: SUBUID, subgid: SUBUID, hasNewuidmap: true };

  it('root: no namespace, no mappings', () => {
    expect(planIds({ ...base, euid: 0, egid: 0 })).toEqual({ plan: { mode: 'root', uidMappings: [], gidMappings: [] } });
  });

  it('a user with ranges and newuidmap: 0 → the user, 1..65536 → the first range', () => {
    const r = planIds(base);
    expect(r.warning).toBeUndefined();
    expect(r.plan).toEqual({
      mode: 'subid',
      uidMappings: [
        { containerID: 0, hostID: 1000, size: 1 },
        { containerID: 1, hostID: 100000, size: 65536 },
      ],
      gidMappings: [
        { containerID: 0, hostID: 1000, size: 1 },
        { containerID: 1, hostID: 100000, size: 65536 },
      ],
    });
  });

  it('a small range maps only its size; a bigger one is capped at 65536', () => {
    const small = planIds({ ...base, euid: 1001, egid: 1001, user: 'dave' });
    expect(small.plan.uidMappings[1]).toEqual({ containerID: 1, hostID: 300000, size: 1000 });
    const big = planIds({ ...base, subuid: 'alice:100000:1000000\n', subgid: 'alice:100000:1000000\n' });
    expect(big.plan.uidMappings[1]).toEqual({ containerID: 1, hostID: 100000, size: 65536 });
  });

  it('falls back to a single mapping with one warning line: no range, or no newuidmap', () => {
    for (const input of [{ ...base, user: 'nobody-here', euid: 4242 }, { ...base, hasNewuidmap: false }, { ...base, subgid: '' }]) {
      const r = planIds(input);
      expect(r.plan).toEqual({
        mode: 'single',
        uidMappings: [{ containerID: 0, hostID: input.euid, size: 1 }],
        gidMappings: [{ containerID: 0, hostID: input.egid, size: 1 }],
      });
      expect(r.warning).toMatch(/^[^\n]+$/);
      expect(r.warning).toMatch(/owned by the container's root/);
    }
    expect(planIds({ ...base, hasNewuidmap: false }).warning).toMatch(/newuidmap/);
    expect(planIds({ ...base, subgid: '' }).warning).toMatch(/subgid/);
  });
});

describe('id maps', () => {
  it('parses /proc/PID/uid_map and compares regardless of order', () => {
    const m = parseIdMap('         0       1001          1\n         1     100000      65536\n');
    expect(m).toEqual([
      { containerID: 0, hostID: 1001, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ]);
    expect(sameMappings(m, [...m].reverse())).toBe(true);
    expect(sameMappings(m, [{ containerID: 0, hostID: 1001, size: 1 }, { containerID: 1, hostID: 100000, size: 65535 }])).toBe(false);
  });
});
