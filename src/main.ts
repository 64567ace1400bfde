import { loadConfig, ConfigError } from './config/load-config.ts';
import type { Config } from './config/schema.ts';
import { createLogger } from './observability/logger.ts';
import { App } from './app.ts';

// The server entry point: load config, start, print the API key once, shut down on signals.

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`tributary: ${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const logger = createLogger({ level: config.logLevel });
const app = new App({ config, logger });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  const timer = setTimeout(() => {
    logger.error('shutdown took too long: exiting');
    process.exit(1);
  }, config.http.shutdownGraceMs + 10_000);
  timer.unref();
  await app.close(signal);
  logger.flush();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

try {
  const started = await app.start();
  if (started.generatedApiKey) {
    // Printed once, on stdout, outside the log stream; only its hash is stored.
    process.stdout.write(
      `\n  Tributary API key (shown once, store it now):\n\n    ${started.generatedApiKey}\n\n` +
        `  Try: curl -H "Authorization: Bearer ${started.generatedApiKey}" ${started.httpUrl}/v1/live_inputs\n\n`,
    );
  }
} catch (error) {
  logger.fatal({ err: error }, (error as Error).message);
  logger.flush();
  process.exit(1);
}
