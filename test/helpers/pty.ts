/**
 * A terminal session as a user would have it: the program under test runs
 * inside a real pseudo-terminal (node-pty) that the test types into and
 * resizes.
 */
import { spawn as ptySpawn } from 'node-pty';

/** The container side of the scenario: prints its tty, reports sizes, and exits 7 on Ctrl-C. */
export const TERMINAL_SCRIPT = 'tty; read x; stty size; echo ready; trap "stty size; echo got INT; exit 7" INT; while :; do sleep 0.1; done';

async function waitFor(read: () => string, re: RegExp, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(read())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${re}; got ${JSON.stringify(read())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TerminalScenarioResult {
  code: number;
  /** Everything the terminal showed. */
  out: string;
  /** `out` split into lines, carriage returns removed (each terminal layer turns \n into \r\n). */
  lines: string[];
}

/**
 * Runs `argv` (whose container runs TERMINAL_SCRIPT) in an 80x24 terminal:
 * waits for its tty name, presses Enter, waits for "ready", resizes to
 * 100x40 and presses Ctrl-C. Expect '24 80' and then '40 100' in the output,
 * 'got INT', and exit status 7.
 */
export async function runTerminalScenario(argv: readonly string[], o: { cwd: string; env: Record<string, string> }): Promise<TerminalScenarioResult> {
  const term = ptySpawn(argv[0]!, argv.slice(1), { cols: 80, rows: 24, cwd: o.cwd, env: o.env });
  let out = '';
  term.onData((d) => (out += d));
  const exited = new Promise<number>((r) => term.onExit((e) => r(e.exitCode)));
  try {
    await waitFor(() => out, /\/dev\/pts\/\d+/);
    term.write('go\r');
    await waitFor(() => out, /ready/);
    term.resize(100, 40);
    await new Promise((r) => setTimeout(r, 500));
    term.write('\x03');
    const code = await exited;
    return { code, out, lines: out.replace(/\r/g, '').split('\n') };
  } finally {
    term.kill('SIGKILL');
  }
}
