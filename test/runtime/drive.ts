/**
 * A stand-in for `s2n-oci run` until the real command exists: runs a
 * hand-written config.json through the driver exactly as run.ts will
 * (state store, stale clean-up, runtime choice, record, launch), so tests can
 * spawn it as the unprivileged user, inside the cgroup2 shim or a pty.
 *
 *   node drive.js --config FILE [--runtime NAME] [--name N] [-t] [-i] [-d] [--rm | --no-rm] [--check-rootfs DIR]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupStale } from '../../src/runtime/containers.js';
import { checkExecutable } from '../../src/runtime/exec-check.js';
import { exitStatusOf } from '../../src/runtime/exit-status.js';
import { chooseRuntime, probeCgroup } from '../../src/runtime/host.js';
import { launchContainer } from '../../src/runtime/launch.js';
import { newContainerId, openStateStore } from '../../src/runtime/state.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    runtime: { type: 'string' },
    name: { type: 'string' },
    tty: { type: 'boolean', short: 't' },
    interactive: { type: 'boolean', short: 'i' },
    detach: { type: 'boolean', short: 'd' },
    'no-rm': { type: 'boolean' },
    rm: { type: 'boolean' },
    'check-rootfs': { type: 'string' },
  },
});

async function main(): Promise<number> {
  const config = JSON.parse(readFileSync(values.config!, 'utf8')) as { process: { args: string[]; env?: string[]; cwd?: string } };
  const notice = (l: string): void => void process.stderr.write(`notice: ${l}\n`);
  const state = await openStateStore({ warn: (l) => process.stderr.write(`warning: ${l}\n`) });
  await cleanupStale(state);
  const cgroup = await probeCgroup(process.geteuid?.() ?? 0);
  const runtime = await chooseRuntime({ ...(values.runtime ? { name: values.runtime } : {}), cgroup, notice, cacheDir: state.root });
  if (values['check-rootfs']) {
    const path = config.process.env?.find((e) => e.startsWith('PATH='))?.slice(5);
    await checkExecutable(values['check-rootfs'], config.process.args[0] ?? '', path, config.process.cwd);
  }
  const id = newContainerId();
  const name = values.name ?? `drive-${id.slice(0, 8)}`;
  const bundle = await state.prepare(id, name);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  const status = await launchContainer({
    state,
    runtime,
    id,
    name,
    bundle,
    command: config.process.args,
    tty: values.tty === true,
    interactive: values.interactive === true,
    detach: values.detach === true,
    rm: values.rm === true || (!values.detach && values['no-rm'] !== true),
    notice,
    onStarted: (pid) => process.stderr.write(`started ${pid}\n`),
  });
  if (values.detach) process.stdout.write(`${id}\n`);
  return status;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`Error: ${(e as Error).message}\n`);
    const hint = (e as { hint?: string }).hint;
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    process.exitCode = exitStatusOf(e);
  },
);
