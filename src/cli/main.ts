#!/usr/bin/env node
// The unbundled entry (ES modules as tsc wrote them); the installed command is s2n-oci.cjs.
import { main } from './program.js';

await main(process.argv);
