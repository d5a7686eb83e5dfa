/**
 * Runs the demo scanner's runner.py with the host's python3 (from the source
 * tree: runner.py finds s2n_sdk next to it) in a clean environment.
 */
import { spawnSync } from 'node:child_process';
import { runProcess, type ProcessResult } from '../helpers/process.js';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cli.js';

export const SCANNER_SRC = join(REPO_ROOT, 'bundles', 'demo-scanner');
export const RUNNER = join(SCANNER_SRC, 'app', 'runner.py');
export const EXAMPLE_PLUGINS = join(SCANNER_SRC, 'plugins-example');

export const HOST_PYTHON: string | undefined = (() => {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.version_info >= (3, 8))'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === 'True' ? 'python3' : undefined;
})();

export type RunResult = ProcessResult;

/** `python3 runner.py ...args` with only PATH, HOME and `env` set. */
export function runScanner(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return runProcess(HOST_PYTHON ?? 'python3', [RUNNER, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', PYTHONDONTWRITEBYTECODE: '1', ...env },
  });
}
