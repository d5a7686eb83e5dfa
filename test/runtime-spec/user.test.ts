import { describe, expect, it } from 'vitest';
import { parseGroup, parsePasswd, resolveUser } from '../../src/runtime-spec/user.js';
import { GROUP, PASSWD } from './fixtures.js';
import { caught } from './helpers.js';

const etc = { passwd: PASSWD, group: GROUP };

describe('resolveUser', () => {
  it.each([
    ['', { uid: 0, gid: 0, additionalGids: [], home: '/root', name: 'root' }],
    ['root', { uid: 0, gid: 0, additionalGids: [], home: '/root', name: 'root' }],
    ['scanner', { uid: 1000, gid: 1000, additionalGids: [33, 2000], home: '/home/scanner', name: 'scanner' }],
    // A numeric uid with an entry gets that entry's gid, home and groups.
    ['1000', { uid: 1000, gid: 1000, additionalGids: [33, 2000], home: '/home/scanner', name: 'scanner' }],
    ['web', { uid: 33, gid: 33, additionalGids: [2000], home: '/var/www', name: 'web' }],
    // Numeric ids need no entry: gid 0 and HOME=/ as runc does.
    ['4242', { uid: 4242, gid: 0, additionalGids: [], home: '/' }],
    ['4242:4343', { uid: 4242, gid: 4343, additionalGids: [], home: '/' }],
    // An explicit group sets exactly one group, no supplementary ones.
    ['scanner:tty', { uid: 1000, gid: 5, additionalGids: [], home: '/home/scanner', name: 'scanner' }],
    ['scanner:33', { uid: 1000, gid: 33, additionalGids: [], home: '/home/scanner', name: 'scanner' }],
    ['1000:7777', { uid: 1000, gid: 7777, additionalGids: [], home: '/home/scanner', name: 'scanner' }],
    ['0:www-data', { uid: 0, gid: 33, additionalGids: [], home: '/root', name: 'root' }],
  ])('%j', (spec, want) => {
    expect(resolveUser(spec, etc, 'example/app:1')).toEqual(want);
  });

  it('accepts numeric ids with no /etc/passwd or /etc/group at all', () => {
    expect(resolveUser('1000:1000', {})).toEqual({ uid: 1000, gid: 1000, additionalGids: [], home: '/' });
    expect(resolveUser('', {})).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/' });
  });

  it('names the user and the image for an unknown name', () => {
    const e = caught(() => resolveUser('nobody', etc, 'example/app:1'));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toBe('resolve user "nobody": no user "nobody" in /etc/passwd of example/app:1');
    expect(e.hint).toContain('numeric uid');
    expect(e.context).toEqual({ user: 'nobody', image: 'example/app:1' });
  });

  it('says when the image has no /etc/passwd or /etc/group', () => {
    expect(caught(() => resolveUser('scanner', {}, 'scratch-app')).message).toContain('scratch-app has no /etc/passwd');
    expect(caught(() => resolveUser('0:staff', { passwd: PASSWD }, 'app')).message).toContain('app has no /etc/group');
    expect(caught(() => resolveUser('scanner:staff', etc, 'app')).message).toContain('no group "staff" in /etc/group of app');
  });

  it('refuses ids out of range', () => {
    expect(caught(() => resolveUser('4294967295', etc)).message).toContain('out of range');
    expect(caught(() => resolveUser('0:99999999999', etc)).message).toContain('out of range');
  });
});

describe('passwd and group parsing', () => {
  it('skips comments and malformed lines, defaults an empty home to /', () => {
    expect(parsePasswd('# c\nbad\nx:x:abc:0::/:/bin/sh\na:x:1:2:::/bin/sh\n')).toEqual([{ name: 'a', uid: 1, gid: 2, home: '/' }]);
    expect(parseGroup('g:x:10:a, b ,\nbad:x:\n')).toEqual([{ name: 'g', gid: 10, members: ['a', 'b'] }]);
  });
});
