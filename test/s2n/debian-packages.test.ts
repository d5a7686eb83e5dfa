/** apt-cache depends output → dependency groups → closure, without apt. */
import { describe, expect, it } from 'vitest';
import { parseDepends, walkClosure } from '../../src/s2n/debian-packages.js';

// The shape of `apt-cache depends --recurse --no-recommends …` on bookworm.
const OUT = `python3.11-minimal
  PreDepends: libc6
  Depends: libpython3.11-minimal
libpython3.11-stdlib
  Depends: libpython3.11-minimal
 |Depends: media-types
  Depends: mime-support
  Depends: libc6
readline-common
 |Depends: dpkg
  Depends: install-info
ca-certificates
  Depends: openssl
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
libpython3.11-minimal
  Depends: libc6
  Depends: libssl3
libc6
  Depends: libgcc-s1
libgcc-s1
  Depends: gcc-12-base
  Depends: libc6
gcc-12-base
libssl3
  Depends: libc6
media-types
mime-support
  Depends: mailcap
mailcap
openssl
  Depends: libssl3
cdebconf
debconf
dpkg
install-info
`;

describe('debian package closure', () => {
  it('parses groups of alternatives, virtual packages with their providers', () => {
    const d = parseDepends(OUT);
    expect(d.get('python3.11-minimal')).toEqual([['libc6'], ['libpython3.11-minimal']]);
    expect(d.get('libpython3.11-stdlib')).toEqual([['libpython3.11-minimal'], ['media-types', 'mime-support'], ['libc6']]);
    expect(d.get('ca-certificates')).toEqual([['openssl'], ['debconf', 'cdebconf', 'debconf']]);
    expect(d.get('gcc-12-base')).toEqual([]);
  });

  it('takes the first alternative, skips excluded ones, follows cycles once', () => {
    const d = parseDepends(OUT);
    expect(walkClosure(d, ['python3.11-minimal', 'libpython3.11-stdlib'], new Set(['dpkg']))).toEqual([
      'gcc-12-base', 'libc6', 'libgcc-s1', 'libpython3.11-minimal', 'libpython3.11-stdlib', 'libssl3', 'media-types', 'python3.11-minimal',
    ]);
    // media-types excluded: the next alternative (and what it drags in) is taken instead.
    expect(walkClosure(d, ['libpython3.11-stdlib'], new Set(['media-types']))).toContain('mime-support');
    // Every alternative excluded: the group is dropped.
    expect(walkClosure(d, ['readline-common'], new Set(['dpkg', 'install-info']))).toEqual(['readline-common']);
    expect(walkClosure(d, ['ca-certificates'], new Set(['debconf', 'cdebconf']))).toEqual(['ca-certificates', 'gcc-12-base', 'libc6', 'libgcc-s1', 'libssl3', 'openssl']);
  });

  it('refuses a package apt does not know', () => {
    expect(() => walkClosure(parseDepends(OUT), ['python9-minimal'], new Set())).toThrow(/apt knows no package python9-minimal/);
  });
});
