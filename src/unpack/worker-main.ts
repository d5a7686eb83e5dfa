// The unpack worker as tsc's ES modules, for a build without the CLI bundle (see worker.ts).
import { runUnpackWorker } from './worker.js';

await runUnpackWorker();
