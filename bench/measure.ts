import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export interface Measurement {
  seconds: number;
  /** Peak resident set size of the process, in bytes. */
  peakRss: number;
  code: number | null;
  stderr: string;
}

const GNU_TIME = '/usr/bin/time';

/**
 * Runs a command and measures wall time and peak RSS. GNU time reports the
 * kernel's own maxrss from wait4(); without it we sample /proc/PID/status
 * (VmHWM is monotonic, so the last sample before exit is close).
 */
export async function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measurement> {
  const useTime = existsSync(GNU_TIME);
  const argv = useTime ? [GNU_TIME, '-f', 'S2N_BENCH %e %M', cmd, ...args] : [cmd, ...args];
  const started = process.hrtime.bigint();
  const child = spawn(argv[0] ?? cmd, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let sampled = 0;
  const timer = useTime
    ? undefined
    : setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m?.[1]) sampled = Math.max(sampled, Number(m[1]) * 1024);
        } catch {
          /* exited */
        }
      }, 10);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  if (timer) clearInterval(timer);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const line = /S2N_BENCH ([\d.]+) (\d+)/.exec(stderr);
  if (useTime && line?.[1] && line[2]) {
    return { seconds: wall, peakRss: Number(line[2]) * 1024, code, stderr: stderr.replace(line[0], '') };
  }
  return { seconds: wall, peakRss: sampled, code, stderr };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Prints rows as an aligned table. */
export function printTable(rows: string[][]): void {
  const w: number[] = [];
  for (const r of rows) r.forEach((c, i) => (w[i] = Math.max(w[i] ?? 0, c.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i] ?? 0)).join('  '));
}

export interface Tool {
  name: string;
  /** Runs the tool once; `i` is the run number, for fresh output paths. */
  run: (i: number) => Promise<Measurement>;
}

/**
 * Runs every tool `runs` times, interleaved so that drift in disk or cache
 * state hits all alike, and prints median/min time, throughput and peak RSS.
 */
export async function compareTools(title: string, tools: Tool[], runs: number, bytes: number): Promise<void> {
  const results = new Map<string, Measurement[]>();
  for (let i = 0; i < runs; i++) {
    for (const t of tools) {
      const m = await t.run(i);
      if (m.code !== 0) throw new Error(`${t.name} failed (exit ${m.code}): ${m.stderr.trim()}`);
      results.set(t.name, [...(results.get(t.name) ?? []), m]);
    }
  }
  const rows = [['tool', 'median time', 'min time', 'MB/s', 'peak RSS']];
  for (const [name, ms] of results) {
    const t = median(ms.map((m) => m.seconds));
    rows.push([name, `${t.toFixed(2)} s`, `${Math.min(...ms.map((m) => m.seconds)).toFixed(2)} s`, (bytes / 1e6 / t).toFixed(0), mb(median(ms.map((m) => m.peakRss)))]);
  }
  console.log(`${title}, ${runs} runs each`);
  printTable(rows);
}

/**
 * Fresh output paths under `outDir`: an earlier output of the same name is
 * moved to `trash`, never deleted between timed runs (deleting a similar tree
 * just before writing one makes some disks several times slower).
 */
export function freshPaths(outDir: string, trash: string): (name: string) => string {
  mkdirSync(outDir, { recursive: true });
  mkdirSync(trash, { recursive: true });
  let seq = 0;
  return (name) => {
    const p = join(outDir, name);
    if (existsSync(p)) renameSync(p, join(trash, `${name}-${process.pid}-${seq++}`));
    return p;
  };
}

/** Is `cmd` installed and answering `probe`? */
export function has(cmd: string, probe: string[] = ['--version']): boolean {
  try {
    execFileSync(cmd, probe, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `--runs N --layers N --layer-mb N`: the shape of the image the pull and load benchmarks build. */
export function layeredImageArgs(): { runs: number; layers: number; layerMb: string; layerSize: number } {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      layers: { type: 'string', default: '6' },
      'layer-mb': { type: 'string', default: '15' },
    },
  });
  return { runs: Number(values.runs), layers: Number(values.layers), layerMb: values['layer-mb'], layerSize: Number(values['layer-mb']) * 1024 * 1024 };
}
