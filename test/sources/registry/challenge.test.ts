import { describe, expect, it } from 'vitest';
import { parseChallenges } from '../../../src/sources/registry/challenge.js';

describe('parseChallenges', () => {
  const table: Array<[string, string | string[] | undefined, Array<{ scheme: string; params: Record<string, string>; token68?: string }>]> = [
    [
      'docker hub bearer with comma inside quotes',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' } }],
    ],
    ['basic', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['scheme case and spaces', 'BEARER  realm = "r" ,  service="s"', [{ scheme: 'bearer', params: { realm: 'r', service: 's' } }]],
    ['unquoted values', 'Bearer realm=https://a/token,service=reg', [{ scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg' } }]],
    ['escaped quote', 'Basic realm="say \\"hi\\", ok"', [{ scheme: 'basic', params: { realm: 'say "hi", ok' } }]],
    [
      'two challenges in one header',
      'Basic realm="b", Bearer realm="https://t/token",scope="repository:a:pull"',
      [
        { scheme: 'basic', params: { realm: 'b' } },
        { scheme: 'bearer', params: { realm: 'https://t/token', scope: 'repository:a:pull' } },
      ],
    ],
    [
      'repeated headers',
      ['Negotiate', 'Bearer realm="x"'],
      [
        { scheme: 'negotiate', params: {} },
        { scheme: 'bearer', params: { realm: 'x' } },
      ],
    ],
    ['token68', 'Negotiate YWJjZA==, Basic realm="r"', [{ scheme: 'negotiate', params: {}, token68: 'YWJjZA==' }, { scheme: 'basic', params: { realm: 'r' } }]],
    ['scheme without params then another', 'Foo, Basic realm="r"', [{ scheme: 'foo', params: {} }, { scheme: 'basic', params: { realm: 'r' } }]],
    ['empty', '', []],
    ['absent', undefined, []],
    ['unterminated quote does not hang', 'Bearer realm="abc', [{ scheme: 'bearer', params: { realm: 'abc' } }]],
  ];
  for (const [name, header, want] of table) {
    it(name, () => {
      expect(parseChallenges(header)).toEqual(want);
    });
  }
});
