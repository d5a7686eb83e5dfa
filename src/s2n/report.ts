/**
 * Reading the scanner's JSON report back and printing it. Only the fields
 * `scan` shows are required; anything else the scanner writes is kept and
 * passed through unchanged with --json.
 */
import { S2nError } from '../errors.js';

export interface ReportFinding {
  plugin: string;
  severity: string;
  title: string;
  url?: string;
  evidence?: string;
}

export interface Report {
  target?: string;
  findings: ReportFinding[];
  errors: Array<{ plugin?: string; message: string }>;
  /** The whole document, as the scanner wrote it. */
  raw: Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function parseReport(text: string, where: string): Report {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new S2nError('EIMAGE', `read scan report ${where}: not JSON (${(e as Error).message})`, {
      hint: 'the scanner wrote a broken report; run again with --profile dev for its debug log',
      context: { path: where },
    });
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { findings?: unknown }).findings)) {
    throw new S2nError('EIMAGE', `read scan report ${where}: no "findings" list`, {
      hint: 'is this an s2n scanner image? `scan` expects report.json with a findings list',
      context: { path: where },
    });
  }
  const raw = doc as Record<string, unknown>;
  const findings = (raw.findings as unknown[]).map((f, i): ReportFinding => {
    const o = (typeof f === 'object' && f !== null ? f : {}) as Record<string, unknown>;
    const title = str(o.title);
    if (title === undefined) {
      throw new S2nError('EIMAGE', `read scan report ${where}: finding ${i + 1} has no title`, { hint: 'the scanner wrote a malformed report', context: { path: where } });
    }
    return { plugin: str(o.plugin) ?? '', severity: str(o.severity) ?? 'unknown', title, ...(str(o.url) ? { url: str(o.url)! } : {}), ...(str(o.evidence) ? { evidence: str(o.evidence)! } : {}) };
  });
  const errors = Array.isArray(raw.errors)
    ? (raw.errors as unknown[]).map((e) => {
        const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
        return { ...(str(o.plugin) ? { plugin: str(o.plugin)! } : {}), message: str(o.message) ?? JSON.stringify(e) };
      })
    : [];
  return { ...(str(raw.target) ? { target: str(raw.target)! } : {}), findings, errors, raw };
}

const SEVERITY_ORDER: Record<string, number> = { high: 0, medium: 1, low: 2 };

/** A plain table, most severe first, and a one-line summary. */
export function formatReport(r: Report): string {
  const rows = [...r.findings].sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3));
  const cells = [['SEVERITY', 'PLUGIN', 'FINDING', 'URL'], ...rows.map((f) => [f.severity.toUpperCase(), f.plugin, f.title, f.url ?? ''])];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const lines = r.findings.length === 0 ? [] : cells.map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd());
  const counts = ['high', 'medium', 'low'].map((s) => `${r.findings.filter((f) => f.severity === s).length} ${s}`).join(', ');
  lines.push(`${r.findings.length} finding${r.findings.length === 1 ? '' : 's'}${r.target ? ` on ${r.target}` : ''} (${counts})`);
  for (const e of r.errors) lines.push(`error${e.plugin ? ` in ${e.plugin}` : ''}: ${e.message}`);
  return `${lines.join('\n')}\n`;
}
