import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultStateRoot, newContainerId, processStart, StateStore, watcherAlive, type ContainerRecord } from '../../src/runtime/state.js';
import { tempDir } from '../helpers/cli.js';

function rec(id: string, name: string, created: string): ContainerRecord {
  return { id, name, created, command: ['sh'], pid: process.pid, bundle: '/b', runtime: 'runc', runtimePath: '/usr/sbin/runc', rm: false, detached: true };
}

describe('state root and records', () => {
  it('chooses the state root like podman: /run as root, XDG_RUNTIME_DIR as a user, /tmp with a warning', () => {
    expect(defaultStateRoot({}, 0)).toEqual({ dir: '/run/s2n-oci' });
    expect(defaultStateRoot({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000)).toEqual({ dir: '/run/user/1000/s2n-oci' });
    const tmp = defaultStateRoot({}, 1000);
    expect(tmp.dir).toMatch(/s2n-oci-1000$/);
    expect(tmp.warning).toMatch(/XDG_RUNTIME_DIR is not set/);
    expect(defaultStateRoot({ S2N_OCI_STATE: '/x/state', XDG_RUNTIME_DIR: '/run/user/1' }, 1)).toEqual({ dir: '/x/state' });
  });

  it('writes, lists, finds by name or id prefix, and removes', async () => {
    const st = await StateStore.open(tempDir());
    const a = newContainerId();
    const b = newContainerId();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    await st.prepare(a, 'alpha');
    await st.write(rec(a, 'alpha', '2026-01-01T00:00:00Z'));
    await expect(st.prepare(b, 'alpha')).rejects.toThrow(/name is already in use/);
    await expect(st.prepare(b, '-bad')).rejects.toThrow(/invalid name/);
    await st.prepare(b, 'beta');
    await st.write(rec(b, 'beta', '2026-01-02T00:00:00Z'));
    expect((await st.list()).map((r) => r.name)).toEqual(['beta', 'alpha']);
    expect((await st.find('alpha')).id).toBe(a);
    expect((await st.find(b.slice(0, 12))).name).toBe('beta');
    await expect(st.find('nope')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await st.remove(a);
    expect((await st.list()).map((r) => r.name)).toEqual(['beta']);
    expect(st.runtimeRoot('runc')).toBe(`${st.root}/runtime/runc`);
  });

  it('knows a watcher is gone even if its pid is reused', async () => {
    const start = processStart(process.pid);
    expect(start).toBeGreaterThan(0);
    expect(watcherAlive({ pid: process.pid, pidStart: start! })).toBe(true);
    expect(watcherAlive({ pid: process.pid, pidStart: start! + 1 })).toBe(false);
    const child = spawn('true');
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    expect(watcherAlive({ pid })).toBe(false);
  });

  it('remove finishes while another process (a detached reaper) still writes into the directory', async () => {
    const st = await StateStore.open(tempDir('s2n-state-'));
    const id = newContainerId();
    const dir = st.bundleDir(id);
    await st.prepare(id, 'busy');
    // Files keep appearing for ~200 ms, as when a reaper writes the exit file and log during rm -f.
    const script = 'import os,sys,time\nd,end,i=sys.argv[1],time.time()+0.2,0\nwhile time.time()<end:\n  try: open(os.path.join(d,"f%d"%i),"w").close()\n  except OSError: pass\n  i+=1\n';
    const writer = spawn('python3', ['-c', script, join(dir, '..')]);
    const writerDone = new Promise((r) => writer.once('exit', r));
    while (!existsSync(join(dir, '..', 'f0'))) await new Promise((r) => setTimeout(r, 5));
    await st.remove(id);
    await writerDone;
    await st.remove(id); // whatever the writer made after the first pass
    expect(await st.read(id)).toBeUndefined();
    expect((await st.list()).map((r) => r.id)).not.toContain(id);
  });
});
