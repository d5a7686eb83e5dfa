/** The scanner's JSON report read back, and the table `scan` prints from it. */
import { describe, expect, it } from 'vitest';
import { isS2nError } from '../../src/errors.js';
import { formatReport, parseReport } from '../../src/s2n/report.js';

const REPORT = {
  scanner: 's2n-demo',
  version: '0.1.0',
  target: 'http://127.0.0.1:8080/',
  plugins: ['security_headers', 'reflected_param', 'custom'],
  findings: [
    { plugin: 'security_headers', severity: 'low', title: 'missing X-Content-Type-Options header', url: 'http://127.0.0.1:8080/', evidence: 'no nosniff' },
    { plugin: 'reflected_param', severity: 'high', title: "parameter 'q' reflected unescaped", url: 'http://127.0.0.1:8080/search?q=x', evidence: 'sent x' },
    { plugin: 'security_headers', severity: 'medium', title: 'missing Content-Security-Policy header', url: 'http://127.0.0.1:8080/', evidence: '' },
  ],
  errors: [{ plugin: 'custom', message: 'ZeroDivisionError: division by zero' }],
  extra: { kept: true },
};

function imageError(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isS2nError(e) && e.code).toBe('EIMAGE');
    expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected an EIMAGE error');
}

describe('parseReport', () => {
  it('reads target, findings and errors, and keeps the whole document', () => {
    const r = parseReport(JSON.stringify(REPORT), '/r/report.json');
    expect(r.target).toBe('http://127.0.0.1:8080/');
    expect(r.findings).toHaveLength(3);
    expect(r.findings[1]).toEqual({ plugin: 'reflected_param', severity: 'high', title: "parameter 'q' reflected unescaped", url: 'http://127.0.0.1:8080/search?q=x', evidence: 'sent x' });
    // Empty evidence is left out, not kept as "".
    expect(r.findings[2]).not.toHaveProperty('evidence');
    expect(r.errors).toEqual([{ plugin: 'custom', message: 'ZeroDivisionError: division by zero' }]);
    expect(r.raw).toEqual(REPORT);
  });

  it('fills what a minimal scanner leaves out', () => {
    const r = parseReport('{"findings": [{"title": "t"}], "errors": [{"message": "m"}, "plain"]}', 'x');
    expect(r).toMatchObject({ findings: [{ plugin: '', severity: 'unknown', title: 't' }], errors: [{ message: 'm' }, { message: '"plain"' }] });
    expect(r.target).toBeUndefined();
    expect(parseReport('{"findings": []}', 'x').errors).toEqual([]);
  });

  it('refuses a report that is not JSON, has no findings list, or a finding without a title, naming the file', () => {
    imageError(() => parseReport('{"findings": [', '/r/report.json'), /^read scan report \/r\/report\.json: not JSON/);
    imageError(() => parseReport('{"findings": {}}', '/r/report.json'), /no "findings" list/);
    imageError(() => parseReport('[]', '/r/report.json'), /no "findings" list/);
    imageError(() => parseReport('null', '/r/report.json'), /no "findings" list/);
    imageError(() => parseReport('{"findings": [{"plugin": "p"}]}', '/r/report.json'), /finding 1 has no title/);
  });
});

describe('formatReport', () => {
  it('prints a table, most severe first, a summary line and the errors', () => {
    const out = formatReport(parseReport(JSON.stringify(REPORT), 'x'));
    expect(out).toBe(
      [
        'SEVERITY  PLUGIN            FINDING                                 URL',
        "HIGH      reflected_param   parameter 'q' reflected unescaped       http://127.0.0.1:8080/search?q=x",
        'MEDIUM    security_headers  missing Content-Security-Policy header  http://127.0.0.1:8080/',
        'LOW       security_headers  missing X-Content-Type-Options header   http://127.0.0.1:8080/',
        '3 findings on http://127.0.0.1:8080/ (1 high, 1 medium, 1 low)',
        'error in custom: ZeroDivisionError: division by zero',
        '',
      ].join('\n'),
    );
  });

  it('prints only the summary when nothing was found', () => {
    expect(formatReport(parseReport('{"target": "http://t/", "findings": []}', 'x'))).toBe('0 findings on http://t/ (0 high, 0 medium, 0 low)\n');
  });

  it('says "1 finding", puts unknown severities last and leaves no trailing blanks without a URL', () => {
    const one = formatReport(parseReport('{"findings": [{"title": "t", "severity": "info", "plugin": "p"}]}', 'x'));
    expect(one).toBe(['SEVERITY  PLUGIN  FINDING  URL', 'INFO      p       t', '1 finding (0 high, 0 medium, 0 low)', ''].join('\n'));
    const mixed = formatReport(parseReport('{"findings": [{"title": "a", "severity": "info"}, {"title": "b", "severity": "low"}]}', 'x'));
    expect(mixed.split('\n')[1]).toMatch(/^LOW/);
  });
});
