/** Suite fixtures shared by the e2e files: started in beforeAll, stopped in afterAll. */
import { afterAll, beforeAll } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startRegistry, type TestRegistry } from './registry.js';

export interface RegistryBehindProxy {
  readonly reg: TestRegistry;
  /** Talks to `reg`; point clients at `proxy.host` to inject faults. */
  readonly proxy: FaultProxy;
}

/** A real registry with a fault proxy in front, for the suite (or describe block) it is called in. */
export function registryBehindProxy(): RegistryBehindProxy {
  let reg: TestRegistry | undefined;
  let proxy: FaultProxy | undefined;
  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg);
  }, 30_000);
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });
  const started = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('registryBehindProxy: used before beforeAll ran');
    return x;
  };
  return {
    get reg() {
      return started(reg);
    },
    get proxy() {
      return started(proxy);
    },
  };
}
