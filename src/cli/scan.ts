import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parsePullPolicy } from '../ensure-image.js';
import { parsePlatform } from '../oci/platform.js';
import { formatReport } from '../s2n/report.js';
import { scan } from '../s2n/scan.js';
import { readScanConfig } from '../s2n/scan-config.js';
import { action } from './context.js';
import { profileFrom, runOptionsFrom, type RunFlags } from './run.js';

interface ScanFlags {
  image?: string;
  profile?: string;
  plugins?: string;
  results?: string;
  caBundle?: string;
  proxy?: string;
  output?: string;
  json?: boolean;
  pull: string;
  platform?: string;
  runtime?: string;
  env: string[];
  volume: string[];
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * `scan` takes only long options of its own, so every scanner flag (`-u`,
 * `-p`, `--url`…) passes through unchanged; unknown options are the scanner's.
 */
export function registerScan(program: Command): void {
  program
    .command('scan')
    .description('run the s2n scanner image against a target; the scanner\'s own arguments pass through')
    .argument('[scanner-args...]', 'arguments for the scanner, e.g. --url http://target -p security_headers')
    .helpOption('--help', 'display help for scan')
    .allowUnknownOption()
    .option('--image <ref>', 'scanner image (default: $S2N_OCI_IMAGE, the scan config, or the demo scanner)')
    .option('--profile <name>', 'prod (default: read-only, no capabilities, non-root) or dev (writable, debug logging, dev image)')
    .option('--plugins <dir>', 'your plugin folder, mounted read-only where the scanner looks for plugins')
    .option('--results <dir>', 'keep the results here (default: a new folder under ~/.local/state/s2n-oci/scans)')
    .option('--ca-bundle <file>', 'PEM CA certificates the scanner trusts (for internal targets)')
    .option('--proxy <url>', 'HTTP(S) proxy for the scanner (default: HTTPS_PROXY/HTTP_PROXY/NO_PROXY from this environment)')
    .option('--output <file>', 'also write the JSON report to this file')
    .option('--json', 'print the JSON report on stdout instead of a table')
    .option('--pull <policy>', 'missing (default), always or never', 'missing')
    .option('--platform <os/arch[/variant]>', 'platform to pull')
    .option('--runtime <name|path>', 'crun or runc, or a path')
    .option('--env <NAME[=VALUE]>', 'extra environment variable for the scanner (repeatable)', collect, [])
    .option('--volume <host:ctr[:ro|rw]>', 'extra bind mount (repeatable)', collect, [])
    .action(
      action(async (ctx, args: string[], flags: ScanFlags) => {
        // The config file may name the default profile, so it is read before the profile is chosen.
        const config = await readScanConfig(process.env);
        const profile = profileFrom(flags.profile ?? config.profile ?? 'prod');
        const pull = parsePullPolicy(flags.pull);
        const store = await ctx.store();
        const empty: RunFlags = { env: flags.env, envFile: [], volume: flags.volume, mount: [], tmpfs: [], capAdd: [], capDrop: [], ulimit: [], securityOpt: [], annotation: [], label: [], pull: flags.pull };
        const options = await runOptionsFrom(empty, []);
        const outcome = await scan(
          store,
          {
            args,
            ...(flags.image ? { image: flags.image } : {}),
            profile,
            ...(flags.plugins !== undefined ? { plugins: flags.plugins } : {}),
            ...(flags.results !== undefined ? { results: flags.results } : {}),
            ...(flags.caBundle !== undefined ? { caBundle: flags.caBundle } : {}),
            ...(flags.proxy !== undefined ? { proxy: flags.proxy } : {}),
            pull,
            ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
            ...(flags.runtime ? { runtime: flags.runtime } : {}),
            env: process.env,
            config,
            options,
          },
          { stdout: process.stdout, stderr: process.stderr, notice: (line) => ctx.out.stderr.write(`${line}\n`) },
        );
        if (outcome.reportText !== undefined && outcome.report) {
          if (flags.output) await writeFile(flags.output, outcome.reportText);
          if (flags.json || ctx.out.json) ctx.out.stdout.write(outcome.reportText.endsWith('\n') ? outcome.reportText : `${outcome.reportText}\n`);
          else ctx.out.stdout.write(formatReport(outcome.report));
          ctx.out.stderr.write(`report: ${outcome.reportPath}\n`);
        } else {
          ctx.out.stderr.write(`the scanner exited ${outcome.status} without a report (results folder: ${outcome.resultsDir})\n`);
        }
        return outcome.status;
      }),
    );
}
